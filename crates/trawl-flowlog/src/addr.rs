//! IP address parsers for the line decoder: the standard library's rules
//! (the tests hold them to `str::parse` exactly), without its generic parser's
//! cost. IPv4 reads all four octets from one 16-byte window; IPv6 follows the
//! same steps as the standard parser (head groups, `::`, tail groups, an
//! embedded IPv4 address in the last 32 bits) on bytes.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::scan::load8_padded;

/// The IPv4 address at the start of `rest`, if one is there and ends at a
/// space or the end of `rest`; returns the address and its length.
///
/// The longest address and its terminator fit in 16 bytes. One window is
/// loaded, the separators are found with one mask, and the four octets are
/// then read independently of each other (no chain from one to the next).
#[inline(always)]
pub(crate) fn parse_ipv4_prefix(rest: &[u8]) -> Option<(Ipv4Addr, usize)> {
    const ZEROS: u128 = 0x3030_3030_3030_3030_3030_3030_3030_3030;
    const LOW7: u128 = 0x7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f_7f7f;
    const NINES_UP: u128 = 0x7676_7676_7676_7676_7676_7676_7676_7676;
    const HIGHS: u128 = 0x8080_8080_8080_8080_8080_8080_8080_8080;
    let window = u128::from(load8_padded(rest, 0)) | u128::from(load8_padded(rest, 8)) << 64;
    // Digits become 0..=9; any other byte gets its high bit set in `stops`
    // (per byte, nothing carries into a neighbour).
    let digits = window ^ ZEROS;
    let mut stops = (((digits & LOW7) + NINES_UP) | digits) & HIGHS;
    let mut ends = [0usize; 4];
    for end in &mut ends {
        *end = (stops.trailing_zeros() / 8) as usize;
        stops &= stops.wrapping_sub(1);
    }
    let mut octets = [0u8; 4];
    let mut start = 0;
    for (index, (octet, &end)) in octets.iter_mut().zip(&ends).enumerate() {
        *octet = octet_value(digits, start, end)?;
        if index < 3 && (window >> (8 * end)) as u8 != b'.' {
            return None;
        }
        start = end + 1;
    }
    let len = ends[3];
    if rest.get(len).is_some_and(|b| *b != b' ') {
        return None;
    }
    Some((Ipv4Addr::from(octets), len))
}

/// The octet whose digits (already minus `'0'`) are bytes `start..end` of
/// `digits`: one to three of them, no leading zero, at most 255.
#[inline(always)]
fn octet_value(digits: u128, start: usize, end: usize) -> Option<u8> {
    let len = end.wrapping_sub(start);
    let bytes = (digits >> (8 * start)) as u32;
    if !(1..=3).contains(&len) || (len > 1 && bytes & 0xff == 0) {
        return None;
    }
    // Right-align the digits in the low three bytes: no branch on the count.
    let aligned = bytes << (8 * (3 - len));
    let value = (aligned & 0xff) * 100 + ((aligned >> 8) & 0xff) * 10 + ((aligned >> 16) & 0xff);
    u8::try_from(value).ok()
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
        let candidate = if i == 0 {
            text
        } else {
            match text.strip_prefix(b":") {
                Some(candidate) => candidate,
                None => return (i, false, text),
            }
        };
        let Some((value, len)) = hex_group(candidate) else {
            return (i, false, text);
        };
        // Digits followed by a dot can only be an embedded IPv4 address.
        if candidate.get(len) == Some(&b'.')
            && i + 1 < limit
            && let Some((v4, v4_len)) = parse_ipv4_prefix(candidate)
            && v4_len == candidate.len()
        {
            let [a, b, c, d] = v4.octets();
            groups[i] = u16::from_be_bytes([a, b]);
            groups[i + 1] = u16::from_be_bytes([c, d]);
            return (i + 2, true, &candidate[v4_len..]);
        }
        groups[i] = value;
        text = &candidate[len..];
    }
    (limit, false, text)
}

/// One to four hex digits at the start of `text`.
#[inline]
fn hex_group(text: &[u8]) -> Option<(u16, usize)> {
    let mut value = 0u16;
    let mut len = 0;
    for &b in text.iter().take(4) {
        let digit = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            b'A'..=b'F' => b - b'A' + 10,
            _ => break,
        };
        value = value << 4 | u16::from(digit);
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
