//! Log formats: which fields a record line carries, in which order.
//!
//! A format comes from one of three places, in this order of precedence:
//! an explicit format string (AWS's `${version} ${srcaddr} …`, or the same
//! names separated by spaces), the header line S3 delivery writes at the top
//! of every file (`version account-id …`), or AWS's default (version 2) format.
//!
//! User-given formats must name known fields (a typo is an error, not a
//! silently empty column). Header lines come from AWS and may carry fields
//! newer than this build: those become *extra* columns kept as text.
//!
//! A line is a header when every token is a field name — a known one, or an
//! unknown one shaped like AWS's (lowercase words joined by `-`, such as
//! `next-hop-az-id` or `instance-tag-2`) — and at least one is known. How many
//! of them are unknown does not matter; a header line has at most
//! [`COLUMNS_MAX`] fields, and a longer one is refused with an error that
//! names the first field past the limit. Record values (IDs such as
//! `eni-1235b8ca…`, numbers, addresses, upper-case keywords) never pass as
//! field names.

use crate::field::Field;

/// Most columns a format (and so a header line) may have, known and extra.
pub const COLUMNS_MAX: usize = 256;

/// One column of a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Column {
    /// A field this build knows.
    Known(Field),
    /// A field this build does not know, kept as text; the number indexes
    /// [`LogFormat::extra_names`].
    Extra(u8),
}

impl Column {
    /// The known field, if the column is one.
    pub fn field(self) -> Option<Field> {
        match self {
            Column::Known(field) => Some(field),
            Column::Extra(_) => None,
        }
    }

    /// Where the column's value lives in a [`crate::FlowRecord`].
    pub(crate) fn slot(self) -> usize {
        match self {
            Column::Known(f) => f as usize,
            Column::Extra(i) => Field::COUNT + i as usize,
        }
    }
}

/// Why a format string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// The format names no field.
    #[error("log format is empty")]
    Empty,
    /// A name that is not an AWS flow-log field.
    #[error(
        "log format: unknown field {name:?} (expected AWS names such as `srcaddr`, `log-status`)"
    )]
    UnknownField {
        /// The name as written.
        name: String,
    },
    /// A `${` without its `}` or a stray character.
    #[error("log format: malformed token {token:?} (expected `${{name}}` or `name`)")]
    Malformed {
        /// The token as written.
        token: String,
    },
    /// The same field twice.
    #[error("log format: field {name:?} appears twice")]
    Duplicate {
        /// The repeated name.
        name: String,
    },
    /// More columns than [`COLUMNS_MAX`].
    #[error("log format: too many columns ({count}, at most {max}): column {column} is {name:?}")]
    TooManyColumns {
        /// Columns found.
        count: usize,
        /// The limit that was exceeded.
        max: usize,
        /// 1-based position of the first column past the limit.
        column: usize,
        /// That column's name, as written.
        name: String,
    },
}

/// The ordered columns of a record line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogFormat {
    columns: Vec<Column>,
    extra_names: Vec<String>,
}

impl Default for LogFormat {
    fn default() -> Self {
        Self::from_fields(Field::DEFAULT_FORMAT).expect("the default format is valid")
    }
}

impl LogFormat {
    /// A format of the given known fields, in order.
    pub fn from_fields(fields: &[Field]) -> Result<Self, FormatError> {
        let mut format = LogFormat {
            columns: Vec::with_capacity(fields.len()),
            extra_names: Vec::new(),
        };
        for &field in fields {
            format.push(Column::Known(field), field.aws_name())?;
        }
        format.check_not_empty()
    }

    /// Parses a user-given format: AWS's `${a} ${b}` syntax or bare names
    /// (`a b`), AWS names or column names. Unknown names are refused.
    pub fn parse(spec: &str) -> Result<Self, FormatError> {
        let mut format = LogFormat {
            columns: Vec::new(),
            extra_names: Vec::new(),
        };
        for token in spec.split_ascii_whitespace() {
            let name = match token.strip_prefix("${") {
                Some(rest) => rest
                    .strip_suffix('}')
                    .ok_or_else(|| FormatError::Malformed {
                        token: token.to_string(),
                    })?,
                None => token,
            };
            if name.is_empty() || !is_field_name(name) {
                return Err(FormatError::Malformed {
                    token: token.to_string(),
                });
            }
            let field = Field::from_name(name).ok_or_else(|| FormatError::UnknownField {
                name: name.to_string(),
            })?;
            format.push(Column::Known(field), name)?;
        }
        format.check_not_empty()
    }

    /// Reads an S3 header line (`version account-id interface-id …`);
    /// `None` when the line is not a header (see the module header) or is
    /// refused (see [`read_header_line`](Self::read_header_line)).
    pub fn from_header_line(line: &[u8]) -> Option<Self> {
        Self::read_header_line(line).ok().flatten()
    }

    /// Reads an S3 header line (`version account-id interface-id …`).
    ///
    /// `Ok(None)` when the line is not a header: every token must be a field
    /// name, known or shaped like one, and at least one known (see the module
    /// header). Unknown names become extra columns. A header with more than
    /// [`COLUMNS_MAX`] fields is [`FormatError::TooManyColumns`]. A header
    /// naming a field twice is not taken for a header.
    pub fn read_header_line(line: &[u8]) -> Result<Option<Self>, FormatError> {
        // The first token alone keeps data lines of formats that start with
        // a number, an address or an ID (`2 …`, `vpc-0abc…`) off the check
        // of the whole line below.
        let first = line.split(|&b| b == b' ').next().unwrap_or_default();
        if !std::str::from_utf8(first).is_ok_and(|t| is_header_name(t.trim_end_matches('\r'))) {
            return Ok(None);
        }
        let Ok(text) = std::str::from_utf8(line) else {
            return Ok(None);
        };
        let tokens = text.trim_end_matches('\r').split_ascii_whitespace();
        let mut known = 0;
        for token in tokens.clone() {
            if Field::from_name(token).is_some() {
                known += 1;
            } else if !is_aws_field_name(token) {
                return Ok(None);
            }
        }
        if known == 0 {
            return Ok(None);
        }
        let tokens: Vec<&str> = tokens.collect();
        if let Some(name) = tokens.get(COLUMNS_MAX) {
            return Err(FormatError::TooManyColumns {
                count: tokens.len(),
                max: COLUMNS_MAX,
                column: COLUMNS_MAX + 1,
                name: (*name).to_string(),
            });
        }
        let mut format = LogFormat {
            columns: Vec::with_capacity(tokens.len()),
            extra_names: Vec::new(),
        };
        for token in tokens {
            let column = match Field::from_name(token) {
                Some(field) => Column::Known(field),
                None => {
                    let name = token.replace('-', "_");
                    match format.extra_names.iter().position(|n| *n == name) {
                        // Pushing it again is refused as a duplicate below.
                        Some(i) => Column::Extra(extra_index(i, token)?),
                        None => {
                            format.extra_names.push(name);
                            Column::Extra(extra_index(format.extra_names.len() - 1, token)?)
                        }
                    }
                }
            };
            match format.push(column, token) {
                Ok(()) => {}
                Err(FormatError::Duplicate { .. }) => return Ok(None),
                Err(error) => return Err(error),
            }
        }
        Ok(Some(format))
    }

    fn push(&mut self, column: Column, name: &str) -> Result<(), FormatError> {
        if self.columns.contains(&column) {
            return Err(FormatError::Duplicate {
                name: name.to_string(),
            });
        }
        if self.columns.len() >= COLUMNS_MAX {
            return Err(FormatError::TooManyColumns {
                count: self.columns.len() + 1,
                max: COLUMNS_MAX,
                column: self.columns.len() + 1,
                name: name.to_string(),
            });
        }
        self.columns.push(column);
        Ok(())
    }

    fn check_not_empty(self) -> Result<Self, FormatError> {
        if self.columns.is_empty() {
            Err(FormatError::Empty)
        } else {
            Ok(self)
        }
    }

    /// The columns, in line order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// Column names of the extra (unknown to this build) columns, snake_case.
    pub fn extra_names(&self) -> &[String] {
        &self.extra_names
    }

    /// The trawl column name of a column (`src_addr`, or an extra's name).
    pub fn column_name(&self, column: Column) -> &str {
        match column {
            Column::Known(field) => field.column(),
            Column::Extra(i) => &self.extra_names[i as usize],
        }
    }

    /// The AWS name of a column (`srcaddr`, or an extra's name with dashes).
    pub fn aws_name(&self, column: Column) -> String {
        match column {
            Column::Known(field) => field.aws_name().to_string(),
            Column::Extra(i) => self.extra_names[i as usize].replace('_', "-"),
        }
    }

    /// Whether the format carries `field`.
    pub fn contains(&self, field: Field) -> bool {
        self.columns.contains(&Column::Known(field))
    }

    /// The format as AWS writes it when creating a flow log: `${version} ${srcaddr} …`.
    pub fn to_aws_format_string(&self) -> String {
        let names: Vec<String> = self
            .columns
            .iter()
            .map(|c| format!("${{{}}}", self.aws_name(*c)))
            .collect();
        names.join(" ")
    }

    /// The header line S3 delivery writes for this format: `version srcaddr …`.
    pub fn header_line(&self) -> String {
        let names: Vec<String> = self.columns.iter().map(|c| self.aws_name(*c)).collect();
        names.join(" ")
    }
}

/// A known field's name, or one shaped like an AWS field name.
fn is_header_name(token: &str) -> bool {
    Field::from_name(token).is_some() || is_aws_field_name(token)
}

/// The index of extra column `index` (named `token`), within [`Column::Extra`]'s range.
fn extra_index(index: usize, token: &str) -> Result<u8, FormatError> {
    u8::try_from(index).map_err(|_| FormatError::TooManyColumns {
        count: index + 1,
        max: usize::from(u8::MAX) + 1,
        column: index + 1,
        name: token.to_string(),
    })
}

/// The shape of an AWS field name this build may not know: lowercase words
/// joined by `-` (or `_`, as in column names), the first of letters, the
/// others of letters with at most two trailing digits, or of one or two
/// digits (`instance-tag-2`). IDs (`eni-1235b8ca…`, `i-0fed…`), numbers,
/// addresses and upper-case keywords do not have it.
fn is_aws_field_name(name: &str) -> bool {
    let mut words = name.split(['-', '_']);
    let letters_then_digits = |word: &str| {
        let letters = word.bytes().take_while(u8::is_ascii_lowercase).count();
        let digits = word.len() - letters;
        letters > 0 && digits <= 2 && word.bytes().skip(letters).all(|b| b.is_ascii_digit())
    };
    let first_is_letters = words
        .next()
        .is_some_and(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()));
    first_is_letters
        && words.all(|w| {
            letters_then_digits(w)
                || (1..=2).contains(&w.len()) && w.bytes().all(|b| b.is_ascii_digit())
        })
}

/// `[a-z][a-z0-9_-]*`: the shape of AWS field names and trawl column names.
fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::field::ValueType;

    #[test]
    fn parses_aws_syntax_and_bare_names_alike() {
        let a = LogFormat::parse("${version} ${vpc-id} ${pkt-srcaddr}").unwrap();
        let b = LogFormat::parse("version vpc_id pkt-srcaddr").unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.to_aws_format_string(),
            "${version} ${vpc-id} ${pkt-srcaddr}"
        );
        assert_eq!(a.header_line(), "version vpc-id pkt-srcaddr");
    }

    #[test]
    fn refuses_unknown_duplicate_malformed_and_empty() {
        assert!(matches!(
            LogFormat::parse("${srcadr}"),
            Err(FormatError::UnknownField { name }) if name == "srcadr"
        ));
        assert!(matches!(
            LogFormat::parse("srcaddr src_addr"),
            Err(FormatError::Duplicate { .. })
        ));
        assert!(matches!(
            LogFormat::parse("${srcaddr"),
            Err(FormatError::Malformed { .. })
        ));
        assert_eq!(LogFormat::parse("  "), Err(FormatError::Empty));
    }

    #[test]
    fn default_format_is_version_2() {
        let f = LogFormat::default();
        assert_eq!(
            f.header_line(),
            "version account-id interface-id srcaddr dstaddr srcport dstport protocol packets bytes start end action log-status"
        );
    }

    #[test]
    fn header_line_is_recognised_and_keeps_new_fields_as_extras() {
        let f = LogFormat::from_header_line(b"version srcaddr future-field log-status\r").unwrap();
        assert_eq!(f.columns().len(), 4);
        assert_eq!(f.extra_names(), ["future_field"]);
        assert_eq!(f.column_name(f.columns()[2]), "future_field");
    }

    const FIELDS_2026: [&str; 11] = [
        "instance-tag",
        "instance-tag-2",
        "interface-tag",
        "interface-tag-2",
        "asg-tag",
        "asg-tag-2",
        "next-hop-interface-id",
        "next-hop-subnet-id",
        "next-hop-az-id",
        "next-hop-vpc-id",
        "next-hop-interface-type",
    ];

    #[test]
    fn a_header_with_eleven_2026_fields_is_taken_for_a_header() {
        let header = format!(
            "version srcaddr dstaddr srcport dstport protocol start end action log-status \
             reject-reason resource-id encryption-status {} interface-type",
            FIELDS_2026.join(" ")
        );
        let f = LogFormat::from_header_line(header.as_bytes()).unwrap();
        assert_eq!(f.columns().len(), 25);
        assert!(f.extra_names().is_empty(), "{:?}", f.extra_names());
        for name in FIELDS_2026 {
            let field = Field::from_name(name).unwrap();
            assert_eq!((field.version(), field.value_type()), (11, ValueType::Str));
            assert!(f.contains(field), "{name}");
        }
        assert_eq!(
            f.header_line(),
            header
                .split_ascii_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        );
    }

    #[test]
    fn a_header_with_more_than_eight_unknown_fields_is_a_header() {
        let unknown: Vec<String> = (1..=40).map(|i| format!("future-field-{i}")).collect();
        let header = format!("version {} log-status", unknown.join(" "));
        let f = LogFormat::from_header_line(header.as_bytes()).unwrap();
        assert_eq!(f.columns().len(), 42);
        assert_eq!(f.extra_names().len(), 40);
        assert_eq!(f.column_name(f.columns()[40]), "future_field_40");
        // Mostly unknown is still a header, as long as one field is known.
        let f = LogFormat::from_header_line(b"srcaddr next-gen-a next-gen-b next-gen-c").unwrap();
        assert_eq!(f.extra_names(), ["next_gen_a", "next_gen_b", "next_gen_c"]);
        assert!(LogFormat::from_header_line(b"next-gen-a next-gen-b").is_none());
    }

    #[test]
    fn a_header_past_the_column_limit_is_refused_naming_the_field() {
        let mut names = vec!["version".to_string()];
        names.extend((1..COLUMNS_MAX + 4).map(letter_name));
        let header = names.join(" ");
        assert_eq!(
            LogFormat::read_header_line(header.as_bytes()),
            Err(FormatError::TooManyColumns {
                count: COLUMNS_MAX + 4,
                max: COLUMNS_MAX,
                column: COLUMNS_MAX + 1,
                name: letter_name(COLUMNS_MAX),
            })
        );
        let at_limit = names[..COLUMNS_MAX].join(" ");
        let f = LogFormat::read_header_line(at_limit.as_bytes())
            .unwrap()
            .unwrap();
        assert_eq!(f.columns().len(), COLUMNS_MAX);
    }

    /// A distinct field-shaped name for every `i` (`field-b-c` for 12).
    fn letter_name(i: usize) -> String {
        let letter = |d: usize| char::from(b'a' + (d % 26) as u8);
        format!("field-{}-{}", letter(i / 26), letter(i))
    }

    #[test]
    fn a_header_naming_a_field_twice_is_not_a_header() {
        assert_eq!(
            LogFormat::read_header_line(b"srcaddr dstaddr srcaddr"),
            Ok(None)
        );
        assert_eq!(
            LogFormat::read_header_line(b"srcaddr new-one new-one"),
            Ok(None)
        );
    }

    #[test]
    fn data_lines_are_not_headers() {
        for line in [
            &b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"[..],
            b"- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5",
            b"i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5",
            // Lowercase values only, but IDs and no known field name.
            b"vpc-abcdefab012345678 us-east-1 apse2-az3 nat_gateway ingress",
            b"eni-1111aaaa2222bbbb3 subnet-aaaaaaaa012345678 start",
            b"web web-2 eth0 eth0-2 my-asg my-asg-2",
            b"",
        ] {
            assert!(LogFormat::from_header_line(line).is_none());
        }
    }
}
