//! trawl-store's integration tests, one module per file, linked as one
//! binary: each test binary links DataFusion (about 240 MB in a debug
//! build), and one binary per file took CI seventeen links and 4 GB of
//! disk. Files whose tests measure or change the whole process (its RSS,
//! its open-files limit) stay binaries of their own (see Cargo.toml);
//! `every_test_file_is_built` keeps a new file from being left out.

mod common;

#[path = "group_text.rs"]
mod group_text;
#[path = "group_text_fixture.rs"]
mod group_text_fixture;
#[path = "group_text_review.rs"]
mod group_text_review;
#[path = "group_text_review2.rs"]
mod group_text_review2;
#[path = "listed.rs"]
mod listed;
#[path = "oracle.rs"]
mod oracle;
#[path = "review_coded_text.rs"]
mod review_coded_text;
#[path = "review_coded_text_tail.rs"]
mod review_coded_text_tail;
#[path = "review_dict_chunk.rs"]
mod review_dict_chunk;
#[path = "review_int_encodings.rs"]
mod review_int_encodings;
#[path = "review_rollup_batch.rs"]
mod review_rollup_batch;
#[path = "review_seal.rs"]
mod review_seal;
#[path = "review_segment_cache.rs"]
mod review_segment_cache;
#[path = "review_shards.rs"]
mod review_shards;
#[path = "review_shared_nulls.rs"]
mod review_shared_nulls;
#[path = "route.rs"]
mod route;
#[path = "seal_reuse.rs"]
mod seal_reuse;
#[path = "segment_cache.rs"]
mod segment_cache;
#[path = "segment_codes.rs"]
mod segment_codes;
#[path = "segment_encodings.rs"]
mod segment_encodings;
#[path = "store.rs"]
mod store;
#[path = "tail_filter_bounded.rs"]
mod tail_filter_bounded;
