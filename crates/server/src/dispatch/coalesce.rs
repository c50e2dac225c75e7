//! Which events of a lane's backlog must be sent, and which a later event makes redundant.
//!
//! Only runs of the same action are collapsed, each to its last event: three triggers of one
//! alert waiting behind an outage become one trigger carrying the newest payload; an
//! acknowledge followed by a resolve stays two events. So PagerDuty ends in the state of the
//! last event, and every transition (opened, acknowledged, resolved, reopened) still happens in
//! PagerDuty's history. Change events are never collapsed: each is a separate change record.

use pagerbridge_store::{EventKind, EventRecord};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Send(usize),
    /// The event at the first index is superseded by the one at the second.
    Coalesce(usize, usize),
}

/// The steps for a lane's pending events, oldest first; indices into `events`.
pub fn plan(events: &[EventRecord], enabled: bool) -> Vec<Step> {
    let mut steps = Vec::with_capacity(events.len());
    let mut i = 0;
    while i < events.len() {
        let mut last = i;
        if enabled && events[i].kind != EventKind::Change {
            while last + 1 < events.len()
                && events[last + 1].kind == events[i].kind
                && events[last + 1].action == events[i].action
            {
                last += 1;
            }
        }
        steps.extend((i..last).map(|j| Step::Coalesce(j, last)));
        steps.push(Step::Send(last));
        i = last + 1;
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;
    use pagerbridge_store::State;
    use pagerduty::events::EventAction::{self, *};

    fn rec(id: i64, kind: EventKind, action: Option<EventAction>) -> EventRecord {
        EventRecord {
            id,
            lane: "l".into(),
            kind,
            routing_key: "r".into(),
            dedup_key: Some("k".into()),
            action,
            body: Vec::new(),
            source: "t".into(),
            received_at: Timestamp::UNIX_EPOCH,
            state: State::Pending,
            attempts: 0,
            next_attempt_at: None,
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            response: None,
            finished_at: None,
            coalesced_into: None,
        }
    }

    fn lane(actions: &[EventAction]) -> Vec<EventRecord> {
        actions
            .iter()
            .enumerate()
            .map(|(i, a)| rec(i as i64, EventKind::EventsV2, Some(*a)))
            .collect()
    }

    #[test]
    fn runs_of_one_action_collapse_to_their_last_event() {
        let ev = lane(&[
            Trigger,
            Trigger,
            Trigger,
            Acknowledge,
            Acknowledge,
            Resolve,
            Trigger,
        ]);
        assert_eq!(
            plan(&ev, true),
            [
                Step::Coalesce(0, 2),
                Step::Coalesce(1, 2),
                Step::Send(2),
                Step::Coalesce(3, 4),
                Step::Send(4),
                Step::Send(5),
                Step::Send(6),
            ]
        );
    }

    #[test]
    fn every_transition_is_sent_and_the_last_event_always_is() {
        // Exhaustive over short sequences: the sent actions are the sequence with repeats
        // removed, so the final state and every change of state reach PagerDuty.
        let actions = [Trigger, Acknowledge, Resolve];
        for n in 1..=6u32 {
            for code in 0..3u32.pow(n) {
                let seq: Vec<_> = (0..n)
                    .map(|i| actions[((code / 3u32.pow(i)) % 3) as usize])
                    .collect();
                let ev = lane(&seq);
                let sent: Vec<_> = plan(&ev, true)
                    .into_iter()
                    .filter_map(|s| match s {
                        Step::Send(i) => Some(i),
                        Step::Coalesce(a, b) => {
                            assert!(
                                a < b && seq[a] == seq[b],
                                "only into a later event of the same action"
                            );
                            None
                        }
                    })
                    .collect();
                assert_eq!(*sent.last().unwrap(), seq.len() - 1, "{seq:?}");
                let mut deduped = seq.clone();
                deduped.dedup();
                assert_eq!(
                    sent.iter().map(|&i| seq[i]).collect::<Vec<_>>(),
                    deduped,
                    "{seq:?}"
                );
                assert_eq!(
                    plan(&ev, true).len(),
                    seq.len(),
                    "every event gets exactly one step"
                );
            }
        }
    }

    #[test]
    fn change_events_and_mixed_apis_are_not_collapsed() {
        let ev = vec![
            rec(0, EventKind::Change, None),
            rec(1, EventKind::Change, None),
            rec(2, EventKind::EventsV1, Some(Trigger)),
            rec(3, EventKind::EventsV2, Some(Trigger)),
        ];
        assert_eq!(
            plan(&ev, true),
            [Step::Send(0), Step::Send(1), Step::Send(2), Step::Send(3)]
        );
    }

    #[test]
    fn disabled_sends_everything() {
        let ev = lane(&[Trigger, Trigger]);
        assert_eq!(plan(&ev, false), [Step::Send(0), Step::Send(1)]);
    }
}
