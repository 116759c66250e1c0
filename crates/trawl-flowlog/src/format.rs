//! Log formats: which fields a record line carries, in which order.
//!
//! A format comes from one of three places, in this order of precedence:
//! an explicit format string (AWS's `${version} ${srcaddr} …`, or the same
//! names separated by spaces), the header line S3 delivery writes at the top
//! of every file (`version account-id …`), or AWS's default (version 2) format.
//!
//! User-given formats must name known fields (a typo is an error, not a
//! silently empty column). Header lines come from AWS and may carry fields
//! newer than this build: those become *extra* columns kept as text, up to
//! [`EXTRA_COLUMNS_MAX`].

use crate::field::Field;

/// Most extra (unknown to this build) columns a header line may carry.
pub const EXTRA_COLUMNS_MAX: usize = 8;

/// Most columns a format may have: every known field once, plus the extras.
pub const COLUMNS_MAX: usize = Field::COUNT + EXTRA_COLUMNS_MAX;

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
    /// More columns than [`COLUMNS_MAX`] (or extras than [`EXTRA_COLUMNS_MAX`]).
    #[error("log format: too many columns ({count}, at most {max})")]
    TooManyColumns {
        /// Columns found.
        count: usize,
        /// The limit that was exceeded.
        max: usize,
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

    /// Reads an S3 header line (`version account-id interface-id …`).
    ///
    /// Returns `None` when the line does not look like a header: every token
    /// must be a field-like name and most of them known fields. Unknown names
    /// become extra columns.
    pub fn from_header_line(line: &[u8]) -> Option<Self> {
        // Field names have no digits; IDs, addresses and numbers do. This
        // keeps data lines of formats that start with an ID (`vpc-…`,
        // `eni-…`) off the slower full check below.
        let first = line.split(|&b| b == b' ').next()?;
        if first.iter().any(u8::is_ascii_digit) {
            return None;
        }
        let text = std::str::from_utf8(line).ok()?.trim_end_matches('\r');
        let tokens: Vec<&str> = text.split_ascii_whitespace().collect();
        let known = tokens
            .iter()
            .filter(|t| Field::from_name(t).is_some())
            .count();
        if tokens.is_empty() || known * 2 <= tokens.len() {
            return None;
        }
        if !tokens.iter().all(|t| is_field_name(t)) {
            return None;
        }
        let mut format = LogFormat {
            columns: Vec::with_capacity(tokens.len()),
            extra_names: Vec::new(),
        };
        for token in tokens {
            let column = match Field::from_name(token) {
                Some(field) => Column::Known(field),
                None => {
                    if format.extra_names.len() >= EXTRA_COLUMNS_MAX {
                        return None;
                    }
                    format.extra_names.push(token.replace('-', "_"));
                    Column::Extra((format.extra_names.len() - 1) as u8)
                }
            };
            format.push(column, token).ok()?;
        }
        Some(format)
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

/// `[a-z][a-z0-9_-]*`: the shape of AWS field names and trawl column names.
fn is_field_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    matches!(bytes.next(), Some(b'a'..=b'z'))
        && bytes.all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_'))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn data_lines_are_not_headers() {
        for line in [
            &b"2 123456789010 eni-1235b8ca123456789 172.31.16.139 172.31.16.21 20641 22 6 20 4249 1418530010 1418530070 ACCEPT OK"[..],
            b"- eni-1235b8ca123456789 10.0.1.5 10.0.0.220 10.0.1.5 203.0.113.5",
            b"i-01234567890123456 eni-1111aaaa2222bbbb3 10.0.1.5 203.0.113.5",
            b"",
        ] {
            assert!(LogFormat::from_header_line(line).is_none());
        }
    }
}
