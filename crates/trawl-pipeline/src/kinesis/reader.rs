//! The reader thread of one `[[sources.kinesis]]`: lists shards, starts
//! this node's shards once their parents are read, calls `GetRecords` on
//! each in turn, adds every record with its position, and backs off when
//! throttled. See the module header of `kinesis`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::error::{DisplayErrorContext, SdkError};
use aws_sdk_kinesis::operation::get_records::{GetRecordsError, GetRecordsOutput};
use aws_sdk_kinesis::operation::get_shard_iterator::GetShardIteratorError;
use aws_sdk_kinesis::types::ShardIteratorType;
use tokio::runtime::Runtime;
use trawl_flowlog::{DecodeOptions, LogFormat};

use super::KinesisSourceConfig;
use super::position::{ShardPosition, owner_of, shard_key};
use crate::kafka::add_message;
use crate::worker::{Context, PositionSource};

/// Longest back-off of a shard whose calls fail or are throttled.
const BACKOFF_MAX: Duration = Duration::from_secs(10);
/// First back-off.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
/// Shortest wait between two calls on a shard that returned records
/// (AWS allows 5 calls a second per shard).
const CALL_INTERVAL_MIN: Duration = Duration::from_millis(200);
/// How often the watermark cap and lags are published.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// Errors printed before only every 1,000th is.
const PRINTED_MAX: u64 = 20;

/// Why a Kinesis source could not start.
#[derive(Debug, thiserror::Error)]
pub enum KinesisError {
    /// A setting is wrong (the message names it).
    #[error("{0}")]
    Config(String),
    /// The async runtime or the reader thread could not be started.
    #[error("starting the Kinesis reader of {stream}: {source}")]
    Start {
        /// The stream configured.
        stream: String,
        /// What failed.
        source: std::io::Error,
    },
}

/// A running Kinesis source: its reader thread.
#[derive(Debug)]
pub struct KinesisSource {
    handle: JoinHandle<()>,
}

impl KinesisSource {
    /// Starts reading `config.stream` into the pipeline of `cx` until `stop`.
    pub fn start(
        cx: Arc<Context>,
        config: KinesisSourceConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<KinesisSource, KinesisError> {
        config.validate().map_err(KinesisError::Config)?;
        let format =
            match &config.log_format {
                Some(spec) => Some(LogFormat::parse(spec).map_err(|e| {
                    KinesisError::Config(format!("sources.kinesis.log_format: {e}"))
                })?),
                None => None,
            };
        let options = DecodeOptions {
            format,
            ..cx.decode_options.clone()
        };
        let stream = config.stream.clone();
        let start_error = |source| KinesisError::Start {
            stream: stream.clone(),
            source,
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(start_error)?;
        let client = runtime.block_on(client_of(&config));
        let reader = Reader {
            name: format!("kinesis:{}", config.stream),
            cx,
            options,
            client,
            runtime,
            shards: BTreeMap::new(),
            listed_once: false,
            relist: false,
            config,
        };
        let handle = std::thread::Builder::new()
            .name("trawl-kinesis".to_string())
            .spawn(move || reader.read_until(&stop))
            .map_err(start_error)?;
        Ok(KinesisSource { handle })
    }

    /// The reader thread (it ends once `stop` is set).
    pub fn into_thread(self) -> JoinHandle<()> {
        self.handle
    }
}

/// A client with trawl's SDK settings (`trawl_cloud::aws::sdk_loader`).
async fn client_of(config: &KinesisSourceConfig) -> Client {
    let loader = trawl_cloud::aws::sdk_loader(&config.region, config.endpoint_url.as_deref());
    Client::new(&loader.load().await)
}

/// One of this node's shards.
#[derive(Debug)]
struct ShardState {
    key: String,
    /// The shard's starting sequence number (kept in its positions).
    shard_start: String,
    /// Born of a reshard this store saw, or listed after the first
    /// listing: starts at its oldest record whatever `start` says (at the
    /// latest one, what was put between the reshard and the first call
    /// would be lost).
    child: bool,
    /// Its parents (a split's one, a merge's two).
    parents: Vec<String>,
    /// Where the store (and this process) stands in it.
    position: Option<ShardPosition>,
    /// Bytes of a record already in, skipped when it is read again.
    skip: Option<(String, u64)>,
    iterator: Option<String>,
    next_call: Instant,
    backoff: Duration,
    newest_event: Option<u32>,
    last_record: Instant,
    behind_ms: i64,
}

impl ShardState {
    fn ended(&self) -> bool {
        self.position.as_ref().is_some_and(|p| p.ended)
    }

    fn back_off(&mut self) {
        self.backoff = (self.backoff * 2).clamp(BACKOFF_MIN, BACKOFF_MAX);
        self.next_call = Instant::now() + self.backoff;
    }
}

/// What a shard listing says of one shard.
struct Listed {
    id: String,
    parents: Vec<String>,
    starting_hash_key: String,
    starting_seq: String,
    closed: bool,
}

/// The reader thread's state.
struct Reader {
    name: String,
    cx: Arc<Context>,
    options: DecodeOptions,
    config: KinesisSourceConfig,
    client: Client,
    runtime: Runtime,
    shards: BTreeMap<String, ShardState>,
    /// The first listing is done (shards listed later are children).
    listed_once: bool,
    /// List again now (a shard ended: its children should not wait).
    relist: bool,
}

impl Reader {
    /// Lists, starts and reads shards until `stop`.
    fn read_until(mut self, stop: &AtomicBool) {
        let list_every = Duration::from_secs(self.config.list_shards_secs);
        let mut last_list: Option<Instant> = None;
        let mut last_publish = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            if self.relist || last_list.is_none_or(|t| t.elapsed() >= list_every) {
                last_list = Some(Instant::now());
                self.relist = false;
                self.list_shards();
            }
            self.start_ready_shards();
            let due: Vec<String> = self
                .shards
                .iter()
                .filter(|(_, s)| s.iterator.is_some() && s.next_call <= Instant::now())
                .map(|(id, _)| id.clone())
                .collect();
            for id in &due {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                self.read_shard(id);
            }
            if last_publish.elapsed() >= PUBLISH_EVERY {
                last_publish = Instant::now();
                self.publish_watermark();
                self.publish_lag();
            }
            if due.is_empty() {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        self.cx.store_read().set_watermark_cap(&self.name, None);
    }

    /// Reads the shard list (every page) and takes this node's new shards,
    /// each at the position the store holds for it.
    fn list_shards(&mut self) {
        let listed = match self
            .runtime
            .block_on(list_all(&self.client, &self.config.stream))
        {
            Ok(listed) => listed,
            Err(error) => return self.report("listing shards", &error),
        };
        let positions = self.cx.store_read().positions().clone();
        for shard in listed {
            let owner = owner_of(&shard.starting_hash_key, self.config.node_count);
            if owner != Some(self.config.node_index) || self.shards.contains_key(&shard.id) {
                continue;
            }
            let key = shard_key(&self.config.stream, &shard.id);
            let stored = positions.get(&key).and_then(|v| ShardPosition::decode(v));
            let position = match stored {
                Some(p) if !p.is_of(&shard.starting_seq, shard.closed) => {
                    self.foreign_position(&shard.id, &p);
                    None
                }
                other => other,
            };
            let child = self.listed_once
                || shard.parents.iter().any(|p| {
                    self.shards.contains_key(p)
                        || positions.contains_key(&shard_key(&self.config.stream, p))
                });
            let skip = position
                .as_ref()
                .filter(|p| !p.whole && !p.ended)
                .map(|p| (p.seq.clone(), p.byte));
            self.shards.insert(
                shard.id,
                ShardState {
                    key,
                    shard_start: shard.starting_seq,
                    child,
                    parents: shard.parents,
                    position,
                    skip,
                    iterator: None,
                    next_call: Instant::now(),
                    backoff: Duration::ZERO,
                    newest_event: None,
                    last_record: Instant::now(),
                    behind_ms: 0,
                },
            );
        }
        self.listed_once = true;
    }

    /// Says (and counts) that a stored position belongs to another shard
    /// of the same id (the stream was made again): it is not used.
    fn foreign_position(&self, id: &str, position: &ShardPosition) {
        self.cx
            .stats
            .kinesis
            .foreign_positions
            .fetch_add(1, Ordering::Relaxed);
        eprintln!(
            "trawl: {}: the position stored for {id} (sequence {}) is not of the shard listed now (the stream was made again?): reading it from its oldest record",
            self.name, position.seq
        );
    }

    /// Gets an iterator for every shard that has none, is not read to its
    /// end, and whose parents (those this node reads) are.
    fn start_ready_shards(&mut self) {
        let ready: Vec<String> = self
            .shards
            .iter()
            .filter(|(_, s)| s.iterator.is_none() && !s.ended() && s.next_call <= Instant::now())
            .filter(|(_, s)| {
                s.parents
                    .iter()
                    .all(|p| self.shards.get(p).is_none_or(ShardState::ended))
            })
            .map(|(id, _)| id.clone())
            .collect();
        for id in ready {
            self.start_shard(&id);
        }
    }

    fn start_shard(&mut self, id: &str) {
        let Some(shard) = self.shards.get(id) else {
            return;
        };
        let mut request = self
            .client
            .get_shard_iterator()
            .stream_name(&self.config.stream)
            .shard_id(id);
        let from = match &shard.position {
            Some(p) if p.whole => {
                request = request
                    .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                    .starting_sequence_number(&p.seq);
                format!("after {}", p.seq)
            }
            Some(p) => {
                request = request
                    .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
                    .starting_sequence_number(&p.seq);
                format!("at {} (byte {} of it)", p.seq, p.byte)
            }
            None if self.config.start == "latest" && !shard.child => {
                request = request.shard_iterator_type(ShardIteratorType::Latest);
                "the latest record".to_string()
            }
            None => {
                request = request.shard_iterator_type(ShardIteratorType::TrimHorizon);
                "its oldest record".to_string()
            }
        };
        let answer = self.runtime.block_on(request.send());
        let Some(shard) = self.shards.get_mut(id) else {
            return;
        };
        match answer {
            Ok(out) => {
                shard.iterator = out.shard_iterator().map(str::to_string);
                shard.last_record = Instant::now();
                eprintln!("trawl: {}: reading {id} from {from}", self.name);
            }
            Err(error) => {
                let invalid = matches!(
                    error.as_service_error(),
                    Some(GetShardIteratorError::InvalidArgumentException(_))
                );
                if invalid && let Some(position) = shard.position.take() {
                    // A sequence number the shard does not know: another
                    // stream's (made again under the same name).
                    shard.skip = None;
                    self.foreign_position(id, &position);
                    return;
                }
                shard.back_off();
                self.report(&format!("starting {id}"), &error);
            }
        }
    }

    /// One `GetRecords` call on shard `id`, its records added.
    fn read_shard(&mut self, id: &str) {
        let Some(iterator) = self.shards.get(id).and_then(|s| s.iterator.clone()) else {
            return;
        };
        let answer = self.runtime.block_on(
            self.client
                .get_records()
                .shard_iterator(iterator)
                .limit(self.config.records_per_call_max)
                .send(),
        );
        match answer {
            Ok(out) => self.add_records(id, &out),
            Err(error) => self.failed_read(id, error),
        }
    }

    fn add_records(&mut self, id: &str, out: &GetRecordsOutput) {
        let stats = &self.cx.stats.kinesis;
        for record in out.records() {
            let seq = record.sequence_number();
            let Some(shard) = self.shards.get_mut(id) else {
                return;
            };
            let skip = match shard.skip.take() {
                Some((at, byte)) if at == seq => byte,
                _ => 0,
            };
            let key = shard.key.clone();
            let shard_start = shard.shard_start.clone();
            let source = format!("{}/{id}@{seq}", self.name);
            stats.records.fetch_add(1, Ordering::Relaxed);
            let added = add_message(
                &self.cx,
                &self.options,
                self.config.container,
                &source,
                record.data().as_ref(),
                (
                    &key,
                    PositionSource::Sequence {
                        seq,
                        shard_start: &shard_start,
                    },
                ),
                skip,
            );
            let after = ShardPosition::after(seq, &shard_start);
            if let Err(error) = self
                .cx
                .store_read()
                .note_positions(&[(&key, &after.encode())])
            {
                eprintln!("trawl: {source}: {error}");
            }
            if let Some(why) = added.bad {
                let n = stats.bad_records.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= PRINTED_MAX || n.is_multiple_of(1000) {
                    eprintln!("trawl: bad record #{n}: {source}: {why}");
                }
            }
            shard.position = Some(after);
            shard.last_record = Instant::now();
            shard.newest_event = shard.newest_event.max(added.start_max);
        }
        let Some(shard) = self.shards.get_mut(id) else {
            return;
        };
        shard.behind_ms = out.millis_behind_latest().unwrap_or(0);
        shard.backoff = Duration::ZERO;
        let wait = if out.records().is_empty() {
            Duration::from_millis(self.config.poll_interval_ms)
        } else {
            CALL_INTERVAL_MIN
        };
        shard.next_call = Instant::now() + wait;
        match out.next_shard_iterator() {
            Some(next) => shard.iterator = Some(next.to_string()),
            None => {
                // Closed and read to its end: the children may start.
                let mut ended = shard.position.clone().unwrap_or_default();
                ended.ended = true;
                ended.whole = true;
                ended.byte = 0;
                ended.from = Some(shard.shard_start.clone());
                self.relist = true;
                if let Err(error) = self
                    .cx
                    .store_read()
                    .note_positions(&[(&shard.key, &ended.encode())])
                {
                    eprintln!("trawl: {}/{id}: {error}", self.name);
                }
                shard.position = Some(ended);
                shard.iterator = None;
                stats.shards_ended.fetch_add(1, Ordering::Relaxed);
                eprintln!("trawl: {}: {id} read to its end (closed)", self.name);
            }
        }
    }

    /// A failed call: throttled or failed calls back off; an expired
    /// iterator is got again from where this process stands.
    fn failed_read(&mut self, id: &str, error: SdkError<GetRecordsError>) {
        let stats = &self.cx.stats.kinesis;
        let Some(shard) = self.shards.get_mut(id) else {
            return;
        };
        match error.as_service_error() {
            Some(GetRecordsError::ExpiredIteratorException(_)) => {
                shard.iterator = None;
                if let Some(p) = shard.position.as_ref().filter(|p| !p.whole) {
                    shard.skip = Some((p.seq.clone(), p.byte));
                }
                stats.expired_iterators.fetch_add(1, Ordering::Relaxed);
            }
            Some(
                GetRecordsError::ProvisionedThroughputExceededException(_)
                | GetRecordsError::KmsThrottlingException(_),
            ) => {
                shard.back_off();
                stats.throttles.fetch_add(1, Ordering::Relaxed);
            }
            Some(GetRecordsError::ResourceNotFoundException(_)) => {
                // Gone (past retention, or the stream was deleted): it
                // holds no child; listed again, it starts afresh.
                self.shards.remove(id);
                self.report(&format!("reading {id}"), &error);
            }
            _ => {
                shard.back_off();
                self.report(&format!("reading {id}"), &error);
            }
        }
    }

    /// Holds the store's watermark at the slowest active shard that is not idle.
    fn publish_watermark(&self) {
        let idle_after = Duration::from_secs(self.config.idle_shard_secs);
        let cap = self
            .shards
            .values()
            .filter(|s| s.iterator.is_some())
            // Idle: no record for a while and nothing behind the tip (a
            // shard still catching up on empty pages holds it).
            .filter(|s| {
                self.config.idle_shard_secs == 0
                    || s.last_record.elapsed() < idle_after
                    || s.behind_ms > 0
            })
            .filter_map(|s| s.newest_event)
            .min();
        self.cx.store_read().set_watermark_cap(&self.name, cap);
    }

    fn publish_lag(&self) {
        let lags = self
            .shards
            .iter()
            .filter(|(_, s)| !s.ended())
            .map(|(id, s)| {
                let seconds = u64::try_from(s.behind_ms / 1000).unwrap_or(0);
                (format!("{}/{id}", self.config.stream), seconds)
            })
            .collect();
        self.cx.stats.kinesis.set_lags(&self.name, lags);
    }

    fn report<E: std::error::Error>(&self, what: &str, error: &E) {
        let n = self.cx.stats.kinesis.errors.fetch_add(1, Ordering::Relaxed) + 1;
        if n <= PRINTED_MAX || n.is_multiple_of(1000) {
            eprintln!(
                "trawl: {}: {what}: {}",
                self.name,
                DisplayErrorContext(error)
            );
        }
    }
}

/// Every shard of `stream`, every page.
async fn list_all(
    client: &Client,
    stream: &str,
) -> Result<Vec<Listed>, SdkError<aws_sdk_kinesis::operation::list_shards::ListShardsError>> {
    let mut listed = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let request = match &token {
            None => client.list_shards().stream_name(stream),
            Some(token) => client.list_shards().next_token(token),
        };
        let out = request.max_results(1000).send().await?;
        for shard in out.shards() {
            let parents = [shard.parent_shard_id(), shard.adjacent_parent_shard_id()]
                .into_iter()
                .flatten()
                .map(str::to_string)
                .collect();
            let range = shard.sequence_number_range();
            listed.push(Listed {
                id: shard.shard_id().to_string(),
                starting_seq: range
                    .map(|r| r.starting_sequence_number().to_string())
                    .unwrap_or_default(),
                closed: range.is_some_and(|r| r.ending_sequence_number().is_some()),
                parents,
                starting_hash_key: shard
                    .hash_key_range()
                    .map(|r| r.starting_hash_key().to_string())
                    .unwrap_or_default(),
            });
        }
        token = out.next_token().map(str::to_string);
        if token.is_none() || out.shards().is_empty() {
            return Ok(listed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard() -> ShardState {
        ShardState {
            key: "kinesis:flows/shardId-000000000000".into(),
            shard_start: "1".into(),
            child: false,
            parents: Vec::new(),
            position: None,
            skip: None,
            iterator: Some("it".into()),
            next_call: Instant::now(),
            backoff: Duration::ZERO,
            newest_event: None,
            last_record: Instant::now(),
            behind_ms: 0,
        }
    }

    #[test]
    fn a_throttled_shard_backs_off_doubling_up_to_the_cap() {
        let mut s = shard();
        let mut waits = Vec::new();
        for _ in 0..10 {
            s.back_off();
            waits.push(s.backoff);
            assert!(s.next_call > Instant::now(), "the next call waits");
        }
        assert_eq!(waits[0], BACKOFF_MIN);
        assert_eq!(waits[1], BACKOFF_MIN * 2);
        assert_eq!(waits[2], BACKOFF_MIN * 4);
        assert_eq!(*waits.last().unwrap(), BACKOFF_MAX, "capped");
        assert!(waits.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn a_shard_is_ended_only_by_an_ended_position() {
        let mut s = shard();
        assert!(!s.ended());
        s.position = Some(ShardPosition::after("5", "1"));
        assert!(!s.ended());
        s.position.as_mut().unwrap().ended = true;
        assert!(s.ended());
    }
}
