//! The v2 frame: encrypt-then-MAC with per-session keys.
