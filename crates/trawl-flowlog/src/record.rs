//! A decoded flow-log record: one typed value per field, borrowing its text
//! from the input buffer (no allocation per field).
//!
//! A record has a slot for every known field, inline, and one for each extra
//! column of its format, in a vector that grows to the widest format the
//! record was decoded with (reusing a record allocates nothing after that).
//! Slots of fields the line's format does not carry stay [`Value::Null`], as
//! do fields written `-`. The decoder guarantees each slot holds the variant its
//! field's [`ValueType`](crate::ValueType) calls for, with integers within range,
//! so the typed accessors below never fail on a decoded record.

use std::net::IpAddr;

use crate::field::Field;
use crate::format::Column;

/// `text` as an array of its `N` bytes (`N` must be its length).
const fn byte_array<const N: usize>(text: &str) -> [u8; N] {
    let bytes = text.as_bytes();
    assert!(bytes.len() == N);
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = bytes[i];
        i += 1;
    }
    out
}

macro_rules! keyword {
    ($(#[$doc:meta])* $name:ident { $( $(#[$vdoc:meta])* $variant:ident = $text:literal ),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vdoc])* $variant ),*
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[ $($name::$variant),* ];

            /// The text AWS writes for this value.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),* }
            }

            /// Reads the text AWS writes (exact, case-sensitive).
            #[inline]
            pub fn from_bytes(text: &[u8]) -> Option<Self> {
                // Fixed-size array comparisons compile to a few integer
                // compares, where slice comparisons call memcmp.
                $( {
                    const KEY: [u8; $text.len()] = byte_array($text);
                    if <[u8; $text.len()]>::try_from(text).is_ok_and(|candidate| candidate == KEY) {
                        return Some($name::$variant);
                    }
                } )*
                None
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword! {
    /// Whether security groups and network ACLs let the traffic through.
    Action { /** Allowed. */ Accept = "ACCEPT", /** Rejected. */ Reject = "REJECT" }
}

keyword! {
    /// Logging status of the record.
    LogStatus {
        /// Data logged normally.
        Ok = "OK",
        /// No traffic in the aggregation interval.
        NoData = "NODATA",
        /// Some records were skipped (capacity or internal error).
        SkipData = "SKIPDATA",
    }
}

keyword! {
    /// Direction of the flow relative to the interface.
    FlowDirection { /** Into the interface. */ Ingress = "ingress", /** Out of the interface. */ Egress = "egress" }
}

keyword! {
    /// The `type` field: kind of traffic.
    TrafficType { /** IPv4. */ Ipv4 = "IPv4", /** IPv6. */ Ipv6 = "IPv6", /** Elastic Fabric Adapter. */ Efa = "EFA" }
}

keyword! {
    /// The `sublocation-type` field.
    SublocationType {
        /// AWS Wavelength zone.
        Wavelength = "wavelength",
        /// AWS Outpost.
        Outpost = "outpost",
        /// Local Zone.
        LocalZone = "localzone",
    }
}

/// One decoded field value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Value<'a> {
    /// `-` in the line, or a field the format does not carry.
    #[default]
    Null,
    /// An integer field (within the field's range).
    Int(u64),
    /// An address field.
    Addr(IpAddr),
    /// A text field, borrowed from the input.
    Str(&'a str),
    /// The `action` field.
    Action(Action),
    /// The `log-status` field.
    LogStatus(LogStatus),
    /// The `flow-direction` field.
    FlowDirection(FlowDirection),
    /// The `type` field.
    TrafficType(TrafficType),
    /// The `sublocation-type` field.
    SublocationType(SublocationType),
}

impl Value<'_> {
    /// Whether the value is null (`-` or absent).
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }
}

/// A decoded flow-log record borrowing from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord<'a> {
    /// One slot per known field, indexed by discriminant.
    slots: [Value<'a>; Field::COUNT],
    /// One slot per extra column (`Column::Extra(i)` is `extras[i]`).
    extras: Vec<Value<'a>>,
}

impl Default for FlowRecord<'_> {
    fn default() -> Self {
        FlowRecord {
            slots: [Value::Null; Field::COUNT],
            extras: Vec::new(),
        }
    }
}

impl<'a> FlowRecord<'a> {
    /// A record with every field null.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of a known field.
    #[inline]
    pub fn get(&self, field: Field) -> Value<'a> {
        self.slots[field as usize]
    }

    /// Sets a known field. The caller keeps the type invariant of the module
    /// header (the decoder and tests do); typed accessors return `None` for a
    /// value of the wrong variant.
    #[inline]
    pub fn set(&mut self, field: Field, value: Value<'a>) {
        self.slots[field as usize] = value;
    }

    /// The value of a column (known or extra); null for an extra column the
    /// record has no slot for.
    #[inline]
    pub fn column(&self, column: Column) -> Value<'a> {
        match column {
            Column::Known(field) => self.get(field),
            Column::Extra(i) => self.extras.get(usize::from(i)).copied().unwrap_or_default(),
        }
    }

    /// Gives the record a slot for each of `extras` extra columns (at least).
    #[inline]
    pub(crate) fn reserve_extras(&mut self, extras: usize) {
        if self.extras.len() < extras {
            self.extras.resize(extras, Value::Null);
        }
    }

    /// The slot [`Column::slot`] numbers: a known field's, or an extra
    /// column's (which [`reserve_extras`](Self::reserve_extras) must have made).
    #[inline]
    pub(crate) fn slot_mut(&mut self, slot: usize) -> &mut Value<'a> {
        match slot.checked_sub(Field::COUNT) {
            None => &mut self.slots[slot],
            Some(extra) => &mut self.extras[extra],
        }
    }

    /// An integer field, if present.
    #[inline]
    pub fn int(&self, field: Field) -> Option<u64> {
        match self.get(field) {
            Value::Int(v) => Some(v),
            _ => None,
        }
    }

    /// An address field, if present.
    #[inline]
    pub fn addr(&self, field: Field) -> Option<IpAddr> {
        match self.get(field) {
            Value::Addr(a) => Some(a),
            _ => None,
        }
    }

    /// A text field, if present.
    #[inline]
    pub fn text(&self, field: Field) -> Option<&'a str> {
        match self.get(field) {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// `srcaddr`.
    pub fn src_addr(&self) -> Option<IpAddr> {
        self.addr(Field::SrcAddr)
    }

    /// `dstaddr`.
    pub fn dst_addr(&self) -> Option<IpAddr> {
        self.addr(Field::DstAddr)
    }

    /// `srcport`.
    pub fn src_port(&self) -> Option<u16> {
        self.int(Field::SrcPort).and_then(|v| u16::try_from(v).ok())
    }

    /// `dstport`.
    pub fn dst_port(&self) -> Option<u16> {
        self.int(Field::DstPort).and_then(|v| u16::try_from(v).ok())
    }

    /// `protocol`.
    pub fn protocol(&self) -> Option<u8> {
        self.int(Field::Protocol).and_then(|v| u8::try_from(v).ok())
    }

    /// `packets`.
    pub fn packets(&self) -> Option<u64> {
        self.int(Field::Packets)
    }

    /// `bytes`.
    pub fn bytes(&self) -> Option<u64> {
        self.int(Field::Bytes)
    }

    /// `start`, Unix seconds.
    pub fn start(&self) -> Option<u64> {
        self.int(Field::Start)
    }

    /// `end`, Unix seconds.
    pub fn end(&self) -> Option<u64> {
        self.int(Field::End)
    }

    /// `account-id`.
    pub fn account_id(&self) -> Option<&'a str> {
        self.text(Field::AccountId)
    }

    /// `interface-id`.
    pub fn interface_id(&self) -> Option<&'a str> {
        self.text(Field::InterfaceId)
    }

    /// `action`.
    pub fn action(&self) -> Option<Action> {
        match self.get(Field::Action) {
            Value::Action(a) => Some(a),
            _ => None,
        }
    }

    /// `log-status`.
    pub fn log_status(&self) -> Option<LogStatus> {
        match self.get(Field::LogStatus) {
            Value::LogStatus(s) => Some(s),
            _ => None,
        }
    }

    /// `flow-direction`.
    pub fn flow_direction(&self) -> Option<FlowDirection> {
        match self.get(Field::FlowDirection) {
            Value::FlowDirection(d) => Some(d),
            _ => None,
        }
    }

    /// `type`.
    pub fn traffic_type(&self) -> Option<TrafficType> {
        match self.get(Field::Type) {
            Value::TrafficType(t) => Some(t),
            _ => None,
        }
    }

    /// `sublocation-type`.
    pub fn sublocation_type(&self) -> Option<SublocationType> {
        match self.get(Field::SublocationType) {
            Value::SublocationType(t) => Some(t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_round_trip_their_text() {
        for a in Action::ALL {
            assert_eq!(Action::from_bytes(a.as_str().as_bytes()), Some(*a));
        }
        for s in LogStatus::ALL {
            assert_eq!(LogStatus::from_bytes(s.as_str().as_bytes()), Some(*s));
        }
        assert_eq!(LogStatus::from_bytes(b"ok"), None);
        assert_eq!(TrafficType::from_bytes(b"IPv6"), Some(TrafficType::Ipv6));
    }

    #[test]
    fn typed_accessors_read_their_slots() {
        let mut r = FlowRecord::new();
        r.set(Field::SrcPort, Value::Int(443));
        r.set(Field::Action, Value::Action(Action::Reject));
        assert_eq!(r.src_port(), Some(443));
        assert_eq!(r.action(), Some(Action::Reject));
        assert_eq!(r.dst_port(), None);
        assert_eq!(r.log_status(), None);
    }
}
