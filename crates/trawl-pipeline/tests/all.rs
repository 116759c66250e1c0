//! trawl-pipeline's integration tests, one module per file, linked as
//! one binary (each links DataFusion, the Kafka client and the AWS SDK:
//! about 280 MB in a debug build). Files whose tests change or count the
//! whole process (its file size limit, its threads by name) stay binaries
//! of their own (see Cargo.toml); `every_test_file_is_built` keeps a new
//! file from being left out.

mod common;
#[path = "../../trawl-store/tests/listed.rs"]
mod listed;

#[path = "e2e.rs"]
mod e2e;
#[path = "files.rs"]
mod files;
#[path = "one_file.rs"]
mod one_file;
#[path = "review.rs"]
mod review;
#[path = "review3.rs"]
mod review3;
#[path = "review_coded_text_chunks.rs"]
mod review_coded_text_chunks;
#[path = "review_one_file.rs"]
mod review_one_file;
