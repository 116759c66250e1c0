#![allow(missing_docs, clippy::unwrap_used)]
//! Review probes of the seal's rollup-row conversion: `schema::dim_array`
//! (validity 64 codes a word, Int32 reusing the codes' buffer) at lengths
//! around the word size, all-null / no-null / empty inputs; and
//! `RollupBucket::to_batch` against `RollupLayout::expand`.

use std::sync::Arc;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::{Int32Type, UInt32Type};
use trawl_store::Dim;
use trawl_store::dims::{DIM_COUNT, NULL_CODE};
use trawl_store::rollup::{Measures, RollupBucket, RollupLayout};
use trawl_store::schema::{RollupSpec, dim_array};

fn patterns(len: usize) -> Vec<(&'static str, Vec<u32>)> {
    vec![
        ("no null", (0..len as u32).map(|i| i % 3).collect()),
        ("all null", vec![NULL_CODE; len]),
        (
            "last null",
            (0..len)
                .map(|i| if i + 1 == len { NULL_CODE } else { 2 })
                .collect(),
        ),
        (
            "first null",
            (0..len)
                .map(|i| if i == 0 { NULL_CODE } else { 1 })
                .collect(),
        ),
        (
            "every 7th",
            (0..len as u32)
                .map(|i| if i % 7 == 3 { NULL_CODE } else { i % 3 })
                .collect(),
        ),
    ]
}

#[test]
fn dim_array_edges_match_a_per_value_oracle() {
    let dictionary = Arc::new(StringArray::from(vec!["a", "b", "c"]));
    for len in [0usize, 1, 2, 63, 64, 65, 127, 128, 129, 191, 192, 193, 1000] {
        for (name, codes) in patterns(len) {
            for dim in [Dim::SrcApp, Dim::ServicePort, Dim::Protocol, Dim::CrossAz] {
                let array = dim_array(dim, codes.clone(), &dictionary).unwrap();
                array.to_data().validate_full().unwrap();
                let what = format!("{} len {len} {name}", dim.name());
                assert_eq!(array.len(), len, "{what}");
                let nulls = codes.iter().filter(|c| **c == NULL_CODE).count();
                assert_eq!(array.null_count(), nulls, "{what}");
                assert_eq!(array.logical_null_count(), nulls, "{what}");
                assert_eq!(array.nulls().is_some(), nulls > 0, "{what}");
                for (i, code) in codes.iter().enumerate() {
                    assert_eq!(array.is_null(i), *code == NULL_CODE, "{what} row {i}");
                    if *code == NULL_CODE {
                        continue;
                    }
                    let value = match dim {
                        Dim::SrcApp => array.as_dictionary::<UInt32Type>().keys().value(i),
                        Dim::ServicePort | Dim::Protocol => {
                            array.as_primitive::<Int32Type>().value(i) as u32
                        }
                        _ => u32::from(array.as_boolean().value(i)),
                    };
                    let want = if dim == Dim::CrossAz {
                        u32::from(*code != 0)
                    } else {
                        *code
                    };
                    assert_eq!(value, want, "{what} row {i}");
                }
                // Sliced at an offset that is not a multiple of 8 or 64.
                if len > 70 {
                    let sliced = array.slice(5, len - 70);
                    let want = codes[5..len - 65]
                        .iter()
                        .filter(|c| **c == NULL_CODE)
                        .count();
                    assert_eq!(sliced.null_count(), want, "{what} sliced");
                }
            }
        }
    }
}

/// Rows with every kind of side tuple, a batch from the query (unchecked)
/// path and the seal (checked) path, compared with `expand`, for layouts
/// keeping one side only, other dims only, and all.
#[test]
fn to_batch_matches_expand_for_assorted_layouts() {
    let dictionary = Arc::new(StringArray::from(vec!["a", "b", "c", "d"]));
    let layouts: Vec<Vec<Dim>> = vec![
        vec![Dim::DstAz],
        vec![Dim::ServicePort, Dim::Protocol],
        Dim::ALL.to_vec(),
        vec![Dim::CrossRegion, Dim::SrcApp, Dim::DstApp, Dim::Action],
    ];
    for dims in layouts {
        let spec = RollupSpec {
            dims: dims.clone(),
            ..RollupSpec::minutely()
        };
        let mut layout = RollupLayout::new(&dims);
        let mut bucket = RollupBucket::default();
        for row in 0..300u32 {
            let mut codes = [NULL_CODE; DIM_COUNT];
            for (d, code) in codes.iter_mut().enumerate() {
                let v = (row * 31 + d as u32 * 7) % 5;
                *code = if v == 4 { NULL_CODE } else { v };
            }
            for d in [Dim::CrossAz, Dim::CrossRegion] {
                codes[d as usize] = codes[d as usize].min(1);
            }
            let key = layout.key(60 * (row % 3), None, &codes);
            bucket.add(
                key,
                Measures {
                    bytes: 1,
                    packets: 1,
                    flows: 1,
                },
            );
        }
        let keys: Vec<_> = bucket.rows().map(|(k, _)| k).collect();
        for batch in [
            bucket
                .to_batch(&spec.schema(), &layout, &dictionary)
                .unwrap(),
            bucket
                .to_checked_batch(&spec.schema(), &layout, &dictionary, 60)
                .unwrap(),
        ] {
            assert_eq!(batch.num_rows(), keys.len());
            for (c, dim) in dims.iter().enumerate() {
                let array = batch.column(c + 1);
                for (row, key) in keys.iter().enumerate() {
                    let code = layout.expand(key, *dim);
                    assert_eq!(array.is_null(row), code == NULL_CODE, "{}", dim.name());
                }
            }
        }
    }
}

/// A layout listing an "other" dimension twice (the store's specs refuse
/// that, `RollupLayout::new` does not): the old conversion gave both
/// columns the codes; `std::mem::take` leaves the second one empty and
/// the batch is refused.
#[test]
fn to_batch_with_a_repeated_other_dimension() {
    let dims = vec![Dim::ServicePort, Dim::ServicePort];
    let spec = RollupSpec {
        dims: dims.clone(),
        ..RollupSpec::minutely()
    };
    let mut layout = RollupLayout::new(&dims);
    let mut bucket = RollupBucket::default();
    let mut codes = [NULL_CODE; DIM_COUNT];
    codes[Dim::ServicePort as usize] = 443;
    bucket.add(
        layout.key(60, None, &codes),
        Measures {
            bytes: 1,
            packets: 1,
            flows: 1,
        },
    );
    let dictionary = Arc::new(StringArray::from(vec!["a"]));
    let batch = bucket.to_batch(&spec.schema(), &layout, &dictionary);
    let batch = batch.expect("a batch, as before the change");
    assert_eq!(batch.column(2).as_primitive::<Int32Type>().value(0), 443);
}
