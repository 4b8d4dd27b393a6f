//! Unsigned LEB128 varints: seven bits a byte, low bits first, the high bit set on every byte but
//! the last. Used by the state stores' in-memory cache blocks and by the Dastra sink's binary
//! ledger entries.

/// Why a varint could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VarintError {
    /// The bytes end before the varint's last byte.
    Truncated,
    /// More than 64 bits.
    Overflow,
}

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The number of bytes [`put`] writes for `v` (1 to 10).
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Reads the varint at `*at` and moves `*at` past it.
pub fn read(bytes: &[u8], at: &mut usize) -> Result<u64, VarintError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(VarintError::Truncated)?;
        *at += 1;
        let bits = u64::from(b & 0x7F);
        // The tenth byte holds bit 63 only.
        if shift == 63 && bits > 1 {
            return Err(VarintError::Overflow);
        }
        v |= bits << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(VarintError::Overflow)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_value_reads_back_with_its_length(v in any::<u64>(), prefix in proptest::collection::vec(any::<u8>(), 0..4)) {
            let mut out = prefix.clone();
            put(&mut out, v);
            prop_assert_eq!(out.len() - prefix.len(), len(v));
            let mut at = prefix.len();
            prop_assert_eq!(read(&out, &mut at), Ok(v));
            prop_assert_eq!(at, out.len());
        }

        #[test]
        fn a_cut_varint_is_truncated(v in 0x80u64.., cut in 1usize..10) {
            let mut out = Vec::new();
            put(&mut out, v);
            let cut = cut.min(out.len() - 1);
            prop_assert_eq!(read(&out[..cut], &mut 0), Err(VarintError::Truncated));
        }
    }

    #[test]
    fn boundaries() {
        for (v, n) in [(0, 1), (0x7F, 1), (0x80, 2), (0x3FFF, 2), (0x4000, 3), (u64::MAX, 10)] {
            assert_eq!(len(v), n, "{v:#x}");
        }
        // Bit 64 and an eleventh byte are overflows, not silently dropped bits.
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x02);
        assert_eq!(read(&too_big, &mut 0), Err(VarintError::Overflow));
        assert_eq!(read(&[0x80; 11], &mut 0), Err(VarintError::Overflow));
    }
}
