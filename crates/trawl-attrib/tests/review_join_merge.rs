//! Answers a cold review found changed when `join_or_insert` merged every
//! learned span a new one touched (tried in 3374dfd, reverted): a merged
//! overriding span started before the declaration it overrides, and a
//! merged span lost a tie it had won. The join extends only the last
//! span it touches, as before; batch learning repeats that join exactly
//! (`review_learn_batch.rs`).

mod common;

use common::{app_at, attach, learn};
use trawl_attrib::{AttributionIndex, Rule};

/// App x's interface logs 10.0.0.1 over [0,100] and [300,400], app y's
/// over [150,250]; then x's over [200,300] (touching both x spans). At
/// t = 220 both y's flow [150,250] and x's newest flow [200,300] cover
/// the time; the index breaks such ties by the later-starting span.
/// Before the change x's [200,300] joined only [300,400] (-> [200,400],
/// starting after y's) and x answered; now the three x spans become one
/// [0,400] that starts before y's, and y answers at 220 even though x's
/// flow at 200-300 is the latest-starting evidence covering 220.
#[test]
fn merged_span_loses_tie_to_other_owner_it_used_to_win() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-x", 0, "x");
    attach(&mut index, "eni-y", 0, "y");
    for line in [
        "5 eni-x 10.0.0.1 10.9.9.9 0 100 egress OK",
        "5 eni-x 10.0.0.1 10.9.9.9 300 400 egress OK",
        "5 eni-y 10.0.0.1 10.9.9.9 150 250 egress OK",
        "5 eni-x 10.0.0.1 10.9.9.9 200 300 egress OK",
    ] {
        learn(&mut index, line);
    }
    assert_eq!(
        app_at(&index, "10.0.0.1", 220),
        (Rule::Learned, Some("x".into())),
        "answer at 220 (x answered before the merge change)"
    );
}

/// Rule 2a (an overriding span answers over the declaration it
/// contradicts when `held.from <= span.from`). 10.0.0.1 is declared to a
/// on eni-a at 0, released at 100, declared to a on eni-a again at 150;
/// eni-b is b's. b's interface logs the address over [10,90] (overrides
/// a's first interval), [300,360] and [200,250] (override a's second).
/// The last touches both earlier overriding spans: before the change it
/// joined [300,360] only (-> [200,360]) and b answered at 220 by rule 2a;
/// now all three become [10,360], whose start precedes a's second
/// interval (150), so rule 2a no longer applies and the stale declaration
/// (a) answers at 220 although b's flow [200,250] covers it. The merged
/// span also answers b over [100,150), when the address was released and
/// no flow was seen (answered unknown before).
#[test]
fn merged_overriding_span_starts_before_the_declaration_it_overrides() {
    let mut index = AttributionIndex::default();
    attach(&mut index, "eni-a", 0, "a");
    attach(&mut index, "eni-b", 0, "b");
    for event in [
        common::assign("10.0.0.1", 0, "a", Some("eni-a")),
        trawl_attrib::MetadataEvent::Release {
            ip: common::ip("10.0.0.1"),
            at: 100,
        },
        common::assign("10.0.0.1", 150, "a", Some("eni-a")),
    ] {
        index.apply(&event).unwrap();
    }
    for line in [
        "5 eni-b 10.0.0.1 10.9.9.9 10 90 egress OK",
        "5 eni-b 10.0.0.1 10.9.9.9 300 360 egress OK",
        "5 eni-b 10.0.0.1 10.9.9.9 200 250 egress OK",
    ] {
        learn(&mut index, line);
    }
    assert_eq!(index.stats().learned_overrides, 3, "all three override a");
    assert_eq!(
        (
            app_at(&index, "10.0.0.1", 120),
            app_at(&index, "10.0.0.1", 220)
        ),
        ((Rule::Unknown, None), (Rule::Learned, Some("b".into()))),
        "answers at 120 (released, no flow) and 220 (b's flow at b's interface)"
    );
}
