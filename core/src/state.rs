//! Small value types shared by the wire, PF_KEY, config and node modules.

/// A node's run state, derived from its carp interface or locked by config.
/// The numbers travel on the wire in control messages (reference §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RunState {
    /// Not known yet.
    Init = 0,
    /// carp BACKUP: apply what the master sends.
    Slave = 1,
    /// carp MASTER: forward kernel changes to the slaves.
    Master = 2,
    /// The carp interface could not be read or is in an unexpected state.
    Fail = 3,
}

impl RunState {
    /// The wire value.
    pub const fn to_u32(self) -> u32 {
        self as u32
    }
    /// Parses a wire value; `None` for anything outside 0..=3.
    pub const fn from_u32(v: u32) -> Option<RunState> {
        match v {
            0 => Some(RunState::Init),
            1 => Some(RunState::Slave),
            2 => Some(RunState::Master),
            3 => Some(RunState::Fail),
            _ => None,
        }
    }
    /// Upper-case name as the original logs it.
    pub const fn name(self) -> &'static str {
        match self {
            RunState::Init => "INIT",
            RunState::Slave => "SLAVE",
            RunState::Master => "MASTER",
            RunState::Fail => "FAIL",
        }
    }
}

impl core::fmt::Display for RunState {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// When a legacy snapshot starts with a FLUSH, and whether live FLUSHes are
/// forwarded (reference §6.3, §11.3, §11.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum FlushMode {
    /// Snapshots start with FLUSH; live FLUSHes are forwarded (the default).
    #[default]
    Startup,
    /// Never flush: no FLUSH before snapshots, live FLUSHes are not forwarded.
    Never,
    /// No FLUSH before snapshots; live FLUSHes are forwarded.
    Sync,
}

/// A position in a master's delta stream: the master's epoch (new on every
/// promotion to master) and the sequence number of a delta within it.
/// `Position::NONE` means "nothing applied yet".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct Position {
    /// The master epoch; 0 = none.
    pub epoch: u64,
    /// The last delta sequence number applied within `epoch`.
    pub seq: u64,
}

impl Position {
    /// Nothing applied.
    pub const NONE: Position = Position { epoch: 0, seq: 0 };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_state_round_trip() {
        for v in 0..4 {
            assert_eq!(RunState::from_u32(v).unwrap().to_u32(), v);
        }
        assert_eq!(RunState::from_u32(4), None);
        assert_eq!(RunState::from_u32(u32::MAX), None);
        assert_eq!(RunState::Master.name(), "MASTER");
    }
}
