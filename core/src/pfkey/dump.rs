//! Walking the record stream of an SADB or SPD sysctl dump (reference §13.3).
//!
//! A dump is a concatenation of complete messages. The walk ends at the end
//! of the buffer or at a record of length 0 (as the original's does); a
//! record running past the end, or a tail too short for a header, is an error
//! that ends the walk.

use super::consts::{CHUNK, HDR_LEN};
use super::msg::rd_u16;
use super::{Msg, PfkeyError};

/// Iterator over the records of a dump; see [`records`].
#[derive(Debug, Clone)]
pub struct Records<'a> {
    rest: &'a [u8],
}

/// The records of `dump`. Each item is the record's view, or the reason it
/// could not be viewed (a record with a bad version is reported and skipped;
/// framing errors end the walk).
pub fn records(dump: &[u8]) -> Records<'_> {
    Records { rest: dump }
}

impl<'a> Iterator for Records<'a> {
    type Item = Result<Msg<'a>, PfkeyError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        if self.rest.len() < HDR_LEN {
            self.rest = &[];
            return Some(Err(PfkeyError::Short));
        }
        let n = usize::from(rd_u16(self.rest, 4).unwrap_or(0)) * CHUNK;
        if n == 0 {
            self.rest = &[];
            return None;
        }
        match (self.rest.get(..n), self.rest.get(n..)) {
            (Some(rec), Some(rest)) => {
                self.rest = rest;
                Some(Msg::parse(rec))
            }
            _ => {
                self.rest = &[];
                Some(Err(PfkeyError::BadLength))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::consts::*;
    use super::super::testutil::*;
    use super::*;
    use std::vec::Vec;

    fn two_records() -> Vec<u8> {
        let mut d = TestMsg::new(SADB_DUMP, 2).sa(1, 1, 0, 0).build();
        d.extend(TestMsg::new(SADB_DUMP, 1).sa(2, 1, 3, 0).build());
        d
    }

    #[test]
    fn walks_records() {
        let d = two_records();
        let v: Vec<_> = records(&d).map(|r| r.unwrap()).collect();
        assert_eq!(v.len(), 2);
        assert_eq!((v[0].satype(), v[1].satype()), (2, 1));
        assert_eq!(v[0].len_bytes() + v[1].len_bytes(), d.len());
        assert_eq!(records(&[]).count(), 0);
    }

    #[test]
    fn zero_length_record_ends_walk() {
        let mut d = TestMsg::new(SADB_DUMP, 2).sa(1, 1, 0, 0).build();
        let mut zero = TestMsg::new(SADB_DUMP, 2).build();
        zero[4] = 0;
        d.extend(zero);
        d.extend(TestMsg::new(SADB_DUMP, 1).build());
        assert_eq!(records(&d).count(), 1);
        assert!(records(&d).all(|r| r.is_ok()));
    }

    #[test]
    fn truncated_and_bad_records() {
        let d = two_records();
        let v: Vec<_> = records(&d[..d.len() - 8]).collect();
        assert_eq!(v.len(), 2);
        assert!(v[0].is_ok());
        assert_eq!(v[1], Err(PfkeyError::BadLength));
        let mut d2 = two_records();
        d2.extend_from_slice(&[2, 10, 0, 0]);
        let v: Vec<_> = records(&d2).collect();
        assert_eq!(v.last(), Some(&Err(PfkeyError::Short)));
        // A bad version is reported, and the walk goes on.
        let mut d3 = two_records();
        d3[0] = 7;
        let v: Vec<_> = records(&d3).collect();
        assert_eq!(v[0], Err(PfkeyError::BadVersion(7)));
        assert!(v[1].is_ok());
    }
}
