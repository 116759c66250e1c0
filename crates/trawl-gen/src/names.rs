//! Names of the estate: apps, regions and AZs, AWS service prefixes.
//! Fixed tables, so that generated data reads like a real estate.

/// Regions of the estate, with their AZ ids.
pub const REGIONS: [(&str, [&str; 3]); 3] = [
    ("us-east-1", ["use1-az1", "use1-az2", "use1-az4"]),
    ("eu-west-1", ["euw1-az1", "euw1-az2", "euw1-az3"]),
    ("ap-southeast-2", ["apse2-az1", "apse2-az2", "apse2-az3"]),
];

/// Accounts the estate spans.
pub const ACCOUNTS: [&str; 4] = [
    "123456789012",
    "210987654321",
    "345678901234",
    "456789012345",
];

const WORDS: [&str; 40] = [
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "search",
    "ledger",
    "payments",
    "profile",
    "inventory",
    "orders",
    "pricing",
    "shipping",
    "reviews",
    "ads",
    "recs",
    "email",
    "sms",
    "fraud",
    "identity",
    "session",
    "media",
    "thumbs",
    "export",
    "import",
    "audit",
    "reports",
    "geo",
    "tax",
    "coupons",
    "loyalty",
    "wallet",
    "chat",
    "feed",
    "graph",
    "ml",
    "rank",
    "metrics",
    "config",
    "flags",
];

const ROLES: [&str; 8] = [
    "api", "worker", "db", "cache", "gateway", "web", "queue", "batch",
];

/// The name of app `index`: `checkout-api`, then `checkout-api-2` once the
/// word and role pairs run out.
pub fn app_name(index: usize) -> String {
    let pairs = WORDS.len() * ROLES.len();
    let pair = index % pairs;
    let base = format!(
        "{}-{}",
        WORDS[pair % WORDS.len()],
        ROLES[pair / WORDS.len()]
    );
    match index / pairs {
        0 => base,
        round => format!("{base}-{}", round + 1),
    }
}

/// AWS services the estate calls, each with one IPv4 prefix per region
/// (`52.{service}.{region}.0/24`-shaped, inside documentation-free space).
pub const AWS_SERVICES: [&str; 3] = ["S3", "DYNAMODB", "EC2"];

/// The prefix of AWS service `service` in region `region` (indexes).
pub fn aws_prefix(service: usize, region: usize) -> [u8; 3] {
    [52, 90 + service as u8, 10 + region as u8]
}

/// Service ports a callee app listens on.
pub const SERVICE_PORTS: [u16; 9] = [443, 8080, 5432, 6379, 9092, 8443, 3306, 11211, 50051];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names_are_unique() {
        let names: std::collections::HashSet<String> = (0..2000).map(app_name).collect();
        assert_eq!(names.len(), 2000);
        assert_eq!(app_name(0), "auth-api");
    }
}
