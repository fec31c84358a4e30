//! Kernel dumps as the network process sees them: the privileged process
//! takes the copy and sends it in batches of whole records; the next batch
//! is asked for when the node has consumed the one before, so a dump of a
//! million SAs never sits whole in the network process.

use std::collections::{BTreeMap, VecDeque};

use sasyncd_core::node::DumpId;
use sasyncd_core::platform::DumpRead;

use crate::kernel::Framing;
use crate::secret::SecretBytes;

/// One dump in progress.
#[derive(Debug, Default)]
struct Dump {
    /// Batches received and not yet consumed, the first one from `at`.
    batches: VecDeque<SecretBytes>,
    at: usize,
    /// A batch was asked for and has not arrived.
    asked: bool,
    /// The privileged process said the dump is complete (or failed).
    end: Option<bool>,
}

/// What the caller must ask the privileged process for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Nothing now.
    Nothing,
    /// The next batch of this dump.
    More,
}

/// Every dump the node has asked for and not finished.
#[derive(Debug, Default)]
pub struct Dumps {
    dumps: BTreeMap<DumpId, Dump>,
    /// How the kernel's records say their length.
    framing: Framing,
}

impl Dumps {
    /// No dumps yet, of records framed as `framing` says.
    pub fn new(framing: Framing) -> Dumps {
        Dumps {
            dumps: BTreeMap::new(),
            framing,
        }
    }

    /// The node started a dump; the privileged process sends the first
    /// batch unasked.
    pub fn start(&mut self, dump: DumpId) {
        self.dumps.insert(
            dump,
            Dump {
                asked: true,
                ..Dump::default()
            },
        );
    }

    /// The node dropped a dump (its buffers are wiped as they drop).
    pub fn cancel(&mut self, dump: DumpId) -> bool {
        self.dumps.remove(&dump).is_some()
    }

    /// A batch arrived; false if the dump is unknown (cancelled meanwhile).
    pub fn records(&mut self, dump: DumpId, batch: SecretBytes) -> bool {
        match self.dumps.get_mut(&dump) {
            Some(d) => {
                d.asked = false;
                if !batch.is_empty() {
                    d.batches.push_back(batch);
                }
                true
            }
            None => false,
        }
    }

    /// The privileged process has sent the last batch (`ok`) or failed.
    pub fn end(&mut self, dump: DumpId, ok: bool) {
        if let Some(d) = self.dumps.get_mut(&dump) {
            d.asked = false;
            d.end = Some(ok);
        }
    }

    /// The next record, and whether to ask for the next batch.
    pub fn next(&mut self, dump: DumpId) -> (DumpRead<'_>, Want) {
        let framing = self.framing;
        let Some(d) = self.dumps.get_mut(&dump) else {
            return (DumpRead::End { ok: false }, Want::Nothing);
        };
        // Drop a used-up batch.
        while d
            .batches
            .front()
            .is_some_and(|b| d.at >= b.len() || framing.record_len(&b.as_bytes()[d.at..]) == 0)
        {
            d.batches.pop_front();
            d.at = 0;
        }
        let want = if d.batches.len() <= 1 && d.end.is_none() && !d.asked {
            d.asked = true;
            Want::More
        } else {
            Want::Nothing
        };
        if d.batches.is_empty() {
            let end = d.end;
            return match end {
                Some(ok) => {
                    self.dumps.remove(&dump);
                    (DumpRead::End { ok }, Want::Nothing)
                }
                None => (DumpRead::Pending, want),
            };
        }
        let Some(d) = self.dumps.get_mut(&dump) else {
            return (DumpRead::End { ok: false }, Want::Nothing);
        };
        let at = d.at;
        let Some(b) = d.batches.front() else {
            return (DumpRead::Pending, want);
        };
        let b = b.as_bytes();
        let n = framing.record_len(&b[at..]).min(b.len() - at);
        d.at = at + n;
        let Some(b) = self.dumps.get(&dump).and_then(|d| d.batches.front()) else {
            return (DumpRead::Pending, want);
        };
        (DumpRead::Record(&b.as_bytes()[at..at + n]), want)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(tag: u8) -> Vec<u8> {
        let mut r = vec![tag; 24];
        r[4..6].copy_from_slice(&3u16.to_ne_bytes());
        r
    }

    #[test]
    fn records_then_more_then_end() {
        let mut d = Dumps::default();
        let id = DumpId(7);
        d.start(id);
        assert_eq!(
            d.next(id),
            (DumpRead::Pending, Want::Nothing),
            "first batch comes unasked"
        );
        let batch: Vec<u8> = [rec(1), rec(2)].concat();
        assert!(d.records(id, SecretBytes::new(batch)));
        let (r, want) = d.next(id);
        assert_eq!(r, DumpRead::Record(&rec(1)[..]));
        assert_eq!(
            want,
            Want::More,
            "asks for the next batch while this one is used"
        );
        assert_eq!(d.next(id).0, DumpRead::Record(&rec(2)[..]));
        assert_eq!(
            d.next(id),
            (DumpRead::Pending, Want::Nothing),
            "already asked"
        );
        d.records(id, SecretBytes::new(rec(3)));
        d.end(id, true);
        assert_eq!(d.next(id).0, DumpRead::Record(&rec(3)[..]));
        assert_eq!(d.next(id).0, DumpRead::End { ok: true });
        assert_eq!(
            d.next(id).0,
            DumpRead::End { ok: false },
            "forgotten after its end"
        );
    }

    #[test]
    fn a_cancelled_dump_takes_no_more_batches() {
        let mut d = Dumps::default();
        d.start(DumpId(1));
        assert!(d.cancel(DumpId(1)));
        assert!(!d.records(DumpId(1), SecretBytes::new(rec(1))));
    }

    #[test]
    fn a_truncated_record_ends_its_batch() {
        let mut d = Dumps::default();
        d.start(DumpId(2));
        let mut b = rec(1);
        b.extend_from_slice(&[0u8; 5]);
        d.records(DumpId(2), SecretBytes::new(b));
        d.end(DumpId(2), true);
        assert_eq!(d.next(DumpId(2)).0, DumpRead::Record(&rec(1)[..]));
        assert_eq!(d.next(DumpId(2)).0, DumpRead::End { ok: true });
    }
}
