//! [`Corrupt`]: what the core reports when shared memory holds an impossible value.

use core::fmt;

/// Which shared word held an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Field {
    /// A PulseAudio-layout byte count (`read_count` or `write_count`).
    Count,
    /// An `srb`-layout consumer position.
    ReadPosition,
    /// An `srb`-layout producer position.
    WritePosition,
    /// An fdsem `waiting` word.
    Waiting,
    /// An fdsem `signalled` word.
    Signalled,
    /// An fdsem `in_pipe` word.
    InPipe,
}

impl Field {
    /// The field's name as it appears in the layouts.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Count => "count",
            Field::ReadPosition => "read position",
            Field::WritePosition => "write position",
            Field::Waiting => "fdsem waiting",
            Field::Signalled => "fdsem signalled",
            Field::InPipe => "fdsem in_pipe",
        }
    }
}

/// A word in shared memory held a value the protocol cannot produce.
///
/// Only a misbehaving or hostile peer (or memory corruption) causes this. The
/// ring or semaphore that reported it stays poisoned: every later operation
/// returns the same error, so no further bytes are trusted. The usual
/// response is to drop the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Corrupt {
    /// The word that was wrong.
    pub field: Field,
    /// The value that was read (sign-extended for signed words).
    pub value: i64,
}

impl Corrupt {
    pub(crate) const fn new(field: Field, value: i64) -> Self {
        Self { field, value }
    }
}

impl fmt::Display for Corrupt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared memory corrupt: {} holds impossible value {}",
            self.field.name(),
            self.value
        )
    }
}

impl core::error::Error for Corrupt {}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::string::ToString;

    #[test]
    fn display_names_the_word_and_the_value() {
        let e = Corrupt::new(Field::Count, -1);
        assert_eq!(
            e.to_string(),
            "shared memory corrupt: count holds impossible value -1"
        );
        let e = Corrupt::new(Field::InPipe, 7);
        assert_eq!(
            e.to_string(),
            "shared memory corrupt: fdsem in_pipe holds impossible value 7"
        );
    }
}
