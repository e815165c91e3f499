//! runlog-projections: the event vocabulary of runlog and the pure folds that
//! turn a sequence of events into job, run and checkpoint views.
//!
//! What it is for: saying what happened to a job in a form that can be
//! replayed forever, and deciding which event is valid in which state.
//!
//! What it is not for: I/O, clocks or randomness. It never touches a file and
//! never reads the time; the engine gives every event its timestamp.
