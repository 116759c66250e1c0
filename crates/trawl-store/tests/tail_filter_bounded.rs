//! Regression test from the cold review of the live tail (e03ca99): a tail
//! filter was meant to be "an expression, nothing more", yet the deny list
//! it used missed functions that grow a value by a factor per call, so a
//! short filter (well under `FILTER_BYTES_MAX`) made one row's value
//! gigabytes long and aborted the server. Filters now call only the
//! functions of an allowlist, each bounded by its input.
#![allow(missing_docs, clippy::unwrap_used)]

use trawl_store::{FILTER_BYTES_MAX, TailFilter};

/// `levels` nested `regexp_replace(…, '', '<600 x>', 'g')` over `dst_addr`:
/// each level inserts the 600 bytes between every two characters, so the
/// value grows ~601 times per level.
fn growing(levels: usize) -> String {
    let x = "x".repeat(600);
    let mut expr = "dst_addr".to_string();
    for _ in 0..levels {
        expr = format!("regexp_replace({expr}, '', '{x}', 'g')");
    }
    expr
}

#[test]
fn a_tail_filter_made_one_row_gigabytes_long() {
    // Three levels (1,886 bytes of SQL): ~1.95 GB for each row of each batch.
    let three = format!("length({}) > 0", growing(3));
    assert!(three.len() < FILTER_BYTES_MAX, "{}", three.len());
    // Doubling per call: `encode(…, 'hex')` 16 times is 65,536 times the value.
    let mut hex = "dst_addr".to_string();
    for _ in 0..16 {
        hex = format!("encode({hex}, 'hex')");
    }
    let hex = format!("length({hex}) > 0");
    // Concatenation doubles too, with no function at all.
    let mut concat = "dst_addr".to_string();
    for _ in 0..6 {
        concat = format!("({concat} || {concat})");
    }
    let concat = format!("length({concat}) > 0");
    assert!(concat.len() < FILTER_BYTES_MAX, "{}", concat.len());
    for (what, sql, named) in [
        ("regexp_replace x3", &three, "regexp_replace"),
        ("encode x16", &hex, "nested"),
        ("|| x6", &concat, "concatenation"),
    ] {
        match TailFilter::compile(sql) {
            Err(refused) => assert!(refused.to_string().contains(named), "{what}: {refused}"),
            Ok(_) => panic!(
                "{what}: a {}-byte filter whose output per row has no bound was accepted",
                sql.len()
            ),
        }
    }
}
