//! Word-at-a-time (SWAR) helpers for the line decoder's hot path: finding
//! the next space and parsing eight decimal digits with a few 64-bit
//! operations instead of a loop per byte. Safe code only; every helper is
//! checked against its byte-at-a-time definition in the tests below.

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
const ASCII_ZEROS: u64 = 0x3030_3030_3030_3030;

/// Sets the high bit of exactly those bytes of `word` equal to `byte`.
#[inline]
fn eq_mask(word: u64, byte: u8) -> u64 {
    let x = word ^ (ONES * u64::from(byte));
    !(((x & LOW7) + LOW7) | x | LOW7)
}

#[inline]
fn load8(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// Index of the first space at or after `from`, or `bytes.len()` if none.
#[inline]
pub(crate) fn find_space(bytes: &[u8], mut from: usize) -> usize {
    while let Some(word) = load8(bytes, from) {
        let mask = eq_mask(word, b' ');
        if mask != 0 {
            return from + (mask.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < bytes.len() && bytes[from] != b' ' {
        from += 1;
    }
    from
}

/// The value of eight ASCII decimal digits, or `None` if any byte is not one.
#[cfg(test)]
pub(crate) fn parse_8_digits(digits: &[u8; 8]) -> Option<u64> {
    match digit_run(u64::from_le_bytes(*digits)) {
        (8, value) => Some(value),
        _ => None,
    }
}

/// Eight bytes from `bytes[at..]`, zero-padded past the end (zero is not a digit).
#[inline(always)]
pub(crate) fn load8_padded(bytes: &[u8], at: usize) -> u64 {
    if let Some(word) = load8(bytes, at) {
        return word;
    }
    let mut padded = [0u8; 8];
    let rest = bytes.get(at..).unwrap_or_default();
    padded[..rest.len()].copy_from_slice(rest);
    u64::from_le_bytes(padded)
}

/// The length (0–8) of the run of ASCII digits at the start of `word`
/// (first character in the lowest byte), and the bytes minus `'0'`.
#[inline(always)]
pub(crate) fn digit_run_len(word: u64) -> (usize, u64) {
    let values = word.wrapping_sub(ASCII_ZEROS);
    // A byte outside '0'..='9' either borrowed (high nibble set) or is 10..=15
    // after the subtraction (high nibble set once 6 is added). Borrows only
    // travel towards later characters, so the bytes before the first
    // non-digit are exact.
    let non_digits = (values | values.wrapping_add(0x0606_0606_0606_0606)) & 0xf0f0_f0f0_f0f0_f0f0;
    ((non_digits.trailing_zeros() / 8) as usize, values)
}

/// The run of ASCII digits at the start of `word` (first character in the
/// lowest byte): its length (0–8) and value. No branches on the data.
#[inline(always)]
pub(crate) fn digit_run(word: u64) -> (usize, u64) {
    let (len, values) = digit_run_len(word);
    // Move the run to the top bytes; the bytes shifted in are zero digits.
    let aligned = values.checked_shl(64 - 8 * len as u32).unwrap_or(0);
    // Pairs, then quads, then the whole.
    let pairs = aligned.wrapping_mul(10).wrapping_add(aligned >> 8);
    let low = (pairs & 0x0000_00ff_0000_00ff).wrapping_mul(100 + (1_000_000 << 32));
    let high = ((pairs >> 16) & 0x0000_00ff_0000_00ff).wrapping_mul(1 + (10_000 << 32));
    (len, low.wrapping_add(high) >> 32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn find_space_slow(bytes: &[u8], from: usize) -> usize {
        bytes[from..]
            .iter()
            .position(|&b| b == b' ')
            .map_or(bytes.len(), |i| from + i)
    }

    fn parse_slow(digits: &[u8]) -> Option<u64> {
        std::str::from_utf8(digits)
            .ok()?
            .parse()
            .ok()
            .filter(|_| digits.iter().all(u8::is_ascii_digit))
    }

    #[test]
    fn eight_digit_examples() {
        assert_eq!(parse_8_digits(b"00000000"), Some(0));
        assert_eq!(parse_8_digits(b"12345678"), Some(12_345_678));
        assert_eq!(parse_8_digits(b"99999999"), Some(99_999_999));
        assert_eq!(parse_8_digits(b"1234567/"), None);
        assert_eq!(parse_8_digits(b"1234567:"), None);
        assert_eq!(parse_8_digits(b" 2345678"), None);
    }

    proptest! {
        #[test]
        fn find_space_matches_the_slow_version(bytes in proptest::collection::vec(
            prop_oneof![Just(b' '), any::<u8>()], 0..40), from in 0usize..40) {
            let from = from.min(bytes.len());
            prop_assert_eq!(find_space(&bytes, from), find_space_slow(&bytes, from));
        }

        #[test]
        fn digit_run_matches_the_slow_version(bytes in proptest::array::uniform8(
            prop_oneof![4 => 0x30u8..=0x39, 1 => any::<u8>()])) {
            let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
            let value = parse_slow(&bytes[..len]).unwrap_or(0);
            prop_assert_eq!(digit_run(u64::from_le_bytes(bytes)), (len, value));
        }

        #[test]
        fn parse_8_digits_matches_the_slow_version(bytes in proptest::array::uniform8(
            prop_oneof![4 => 0x30u8..=0x39, 1 => any::<u8>()])) {
            prop_assert_eq!(parse_8_digits(&bytes), parse_slow(&bytes));
        }
    }
}
