//! Control (SYNCCTL) messages.
