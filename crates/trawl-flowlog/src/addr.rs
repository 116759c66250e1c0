//! IP address parsers for the line decoder: the standard library's rules
//! (the tests hold them to `str::parse` exactly), without its generic parser's
//! cost. IPv4 reads all four octets from one 16-byte window; IPv6 follows the
//! same steps as the standard parser (head groups, `::`, tail groups, an
//! embedded IPv4 address in the last 32 bits) on bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::scan::{digit_run_len, load8_padded};

/// The IPv4 address at the start of `rest`, if one is there and ends at a
/// space or the end of `rest`; returns the address and its length.
///
/// The longest address and its terminator fit in 16 bytes, so one window is
/// loaded and shifted along instead of reading each octet from memory.
#[inline(always)]
pub(crate) fn parse_ipv4_prefix(rest: &[u8]) -> Option<(Ipv4Addr, usize)> {
    let mut window = u128::from(load8_padded(rest, 0)) | u128::from(load8_padded(rest, 8)) << 64;
    let mut octets = [0u8; 4];
    let mut len = 0;
    for (index, octet) in octets.iter_mut().enumerate() {
        let (digits, value) = parse_octet(window as u64)?;
        *octet = value;
        len += digits;
        if index < 3 {
            if (window >> (8 * digits)) as u8 != b'.' {
                return None;
            }
            len += 1;
            window >>= 8 * (digits + 1);
        }
    }
    if rest.get(len).is_some_and(|b| *b != b' ') {
        return None;
    }
    Some((Ipv4Addr::from(octets), len))
}

/// One decimal octet (0–255, no leading zero) at the start of `word`
/// (first character in the lowest byte): its length in digits and value.
#[inline(always)]
fn parse_octet(word: u64) -> Option<(usize, u8)> {
    let (len, values) = digit_run_len(word);
    let digit = |i: u32| ((values >> (8 * i)) & 0xff) as u16;
    let (d0, d1, d2) = (digit(0), digit(1), digit(2));
    // Compute every candidate and pick one: no branch on the digit count.
    let candidates = [d0, d0 * 10 + d1, d0 * 100 + d1 * 10 + d2];
    let value = *candidates.get(len.wrapping_sub(1))?;
    if len > 1 && d0 == 0 {
        return None;
    }
    Some((len, u8::try_from(value).ok()?))
}

/// A whole IPv6 address token, by the standard library's rules.
pub(crate) fn parse_ipv6(text: &[u8]) -> Option<Ipv6Addr> {
    let mut head = [0u16; 8];
    let (head_size, head_ipv4, rest) = read_groups(text, &mut head, 8);
    if head_size == 8 {
        return rest.is_empty().then(|| Ipv6Addr::from(head));
    }
    if head_ipv4 {
        return None;
    }
    let rest = rest.strip_prefix(b"::")?;
    // `::` stands for at least one group.
    let limit = 8 - (head_size + 1);
    let mut tail = [0u16; 7];
    let (tail_size, _, rest) = read_groups(rest, &mut tail[..limit], limit);
    if !rest.is_empty() {
        return None;
    }
    head[8 - tail_size..].copy_from_slice(&tail[..tail_size]);
    Some(Ipv6Addr::from(head))
}

/// Reads up to `limit` colon-separated groups into `groups`; an IPv4 address
/// may stand for the last two. Returns how many groups were read, whether
/// the last was IPv4, and the unread rest (a separator that is not followed
/// by a group is left unread).
fn read_groups<'a>(
    mut text: &'a [u8],
    groups: &mut [u16],
    limit: usize,
) -> (usize, bool, &'a [u8]) {
    for i in 0..limit {
        let after_separator = if i == 0 {
            Some(text)
        } else {
            text.strip_prefix(b":")
        };
        let Some(candidate) = after_separator else {
            return (i, false, text);
        };
        if i + 1 < limit
            && let Some((v4, len)) = parse_ipv4_prefix(candidate)
            && len == candidate.len()
        {
            let [a, b, c, d] = v4.octets();
            groups[i] = u16::from_be_bytes([a, b]);
            groups[i + 1] = u16::from_be_bytes([c, d]);
            return (i + 2, true, &candidate[len..]);
        }
        match hex_group(candidate) {
            Some((value, len)) => {
                groups[i] = value;
                text = &candidate[len..];
            }
            None => return (i, false, text),
        }
    }
    (limit, false, text)
}

/// One to four hex digits at the start of `text`.
fn hex_group(text: &[u8]) -> Option<(u16, usize)> {
    let mut value = 0u16;
    let mut len = 0;
    for &b in text.iter().take(4) {
        let Some(digit) = (b as char).to_digit(16) else {
            break;
        };
        value = value << 4 | digit as u16;
        len += 1;
    }
    (len > 0).then_some((value, len))
}

#[cfg(test)]
fn parse_ipv4(token: &[u8]) -> Option<Ipv4Addr> {
    parse_ipv4_prefix(token)
        .filter(|(_, len)| *len == token.len())
        .map(|(addr, _)| addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn same_as_std_v4(text: &str) {
        assert_eq!(
            parse_ipv4(text.as_bytes()),
            text.parse::<Ipv4Addr>().ok(),
            "{text:?}"
        );
    }

    fn same_as_std_v6(text: &str) {
        assert_eq!(
            parse_ipv6(text.as_bytes()),
            text.parse::<Ipv6Addr>().ok(),
            "{text:?}"
        );
    }

    #[test]
    fn ipv4_examples_match_the_standard_parser() {
        for text in [
            "0.0.0.0",
            "10.1.2.3",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1.2.3.04",
            "1.2.3.0",
            "",
            "a.b.c.d",
            "1.2.3.1000",
            "100.200.250.255",
        ] {
            same_as_std_v4(text);
        }
    }

    #[test]
    fn ipv6_examples_match_the_standard_parser() {
        for text in [
            "::",
            "::1",
            "1::",
            "2001:db8::1",
            "2001:db8:1234:a100:8d6e:3477:df66:f105",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6::7:8",
            "::ffff:10.0.0.1",
            "64:ff9b::192.0.2.33",
            "1:2:3:4:5:6:1.2.3.4",
            "1:2:3:4:5:6:7:1.2.3.4",
            "::1.2.3.4",
            "1::2::3",
            ":1::",
            "1:",
            ":",
            "",
            "12345::",
            "abcd::ef01",
            "ABCD::EF01",
            "g::1",
            "::ffff:1.2.3",
            "::1.2.3.4:5",
            "1.2.3.4::",
            "0000:0000::0001",
            "::01.2.3.4",
            "fe80::1%eth0",
        ] {
            same_as_std_v6(text);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]

        #[test]
        fn ipv6_matches_the_standard_parser_on_printed_addresses(bits in any::<u128>(), zeros in 0usize..8, form in 0u8..3) {
            let mut segments = Ipv6Addr::from(bits).segments();
            for segment in segments.iter_mut().skip(zeros % 5).take(zeros) {
                *segment = 0;
            }
            let addr = Ipv6Addr::from(segments);
            let text = match form {
                0 => addr.to_string(),
                1 => segments.iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().join(":"),
                _ => format!("::ffff:{}", Ipv4Addr::from(bits as u32)),
            };
            same_as_std_v6(&text);
        }

        #[test]
        fn ipv6_matches_the_standard_parser_on_junk(text in "[0-9a-fA-F:.g]{0,45}") {
            same_as_std_v6(&text);
        }

        #[test]
        fn ipv4_matches_the_standard_parser_on_junk(text in "[0-9.]{0,18}") {
            same_as_std_v4(&text);
        }
    }
}
