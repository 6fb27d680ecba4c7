//! One bridge's OpenFlow session as a state machine without I/O (OVN's `ofctrl.c` states,
//! quinn-proto's `handle_*`/`poll` split).
//!
//! The daemon tells it what happened — a connection came up or went down, a sync finished, the
//! switch refused the flow monitor or reported a change, events were lost, a drift check is
//! due — and asks it what to do next ([`BridgeSession::poll`]): ask for a flow monitor, make a
//! full sync (TLV map, dump, diff, one bundle), send a delta, or nothing. The session never
//! touches a socket, so every transition below is tested without one.
//!
//! Connections are told apart by their generation (`flowlib::conn::Connection::generation`,
//! counted up by the reconnecting `Switch`). The rules, each found the hard way in e2e runs:
//! * A connection gets deltas only after a full sync of its own: until then what its switch
//!   holds is unknown (ovs-vswitchd drops every connection when the bridge's datapath ID
//!   changes, and the new one may face a switch that lost or kept anything), and a delta is
//!   relative to flows it may not have. The full sync carries every pending change, as the
//!   compiler's state has it already.
//! * A new connection may be seen before its `Connected` event (picked up from the switch
//!   handle) or after it: whichever comes first counts, a repeat or an older one is ignored.
//! * A failed sync leaves what the switch holds unknown: no delta until a full sync, retried
//!   after [`RETRY_DELAY`] (not at once: the switch may be the reason).
//! * What finishes or fails on an older connection changes nothing for the current one.
//! * One flow monitor per connection. Where the switch refused it, drift is found by the
//!   periodic comparison ([`BridgeSession::drift_check`]); where it runs, a change of a kovs
//!   flow by anyone else schedules a repair after [`REPAIR_DELAY`] (to catch a burst at once).

use std::time::{Duration, Instant};

use flowlib::wire::message::FlowUpdate;
use pipelines::tables::is_kovs_cookie;

/// How long after a failed sync it is tried again.
pub const RETRY_DELAY: Duration = Duration::from_millis(500);
/// How long after someone else changed a kovs flow the full sync repairs it.
pub const REPAIR_DELAY: Duration = Duration::from_millis(20);

/// Where the session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection.
    Disconnected,
    /// Connected; what the switch holds is unknown until a full sync.
    Unsynced,
    /// A full sync is in flight.
    Syncing,
    /// The switch holds the desired set as of the last sync: deltas go out.
    Synced,
    /// A delta is in flight.
    Updating,
}

/// What the daemon should do for this bridge now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Ask connection `generation` to report flow changes (ONF flow monitor).
    RequestMonitor { generation: u64 },
    /// Make the switch hold exactly the desired set: dump, compare, one bundle. Report the
    /// outcome with [`BridgeSession::sync_finished`].
    FullSync { generation: u64 },
    /// Send the pending delta. Report the outcome with [`BridgeSession::sync_finished`].
    Delta { generation: u64 },
}

/// One bridge's session; see the module doc for the rules.
#[derive(Debug)]
pub struct BridgeSession {
    phase: Phase,
    /// The newest connection seen.
    generation: Option<u64>,
    /// When a full sync is due (a new connection, drift, a retry after a failure).
    resync_at: Option<Instant>,
    /// A full sync has succeeded once, on any connection (readiness).
    synced_once: bool,
    /// The connection a flow monitor was asked of.
    monitor_requested: Option<u64>,
    /// The connection whose switch refused the flow monitor.
    monitor_refused: Option<u64>,
}

impl Default for BridgeSession {
    fn default() -> Self {
        BridgeSession::new()
    }
}

impl BridgeSession {
    pub fn new() -> BridgeSession {
        BridgeSession {
            phase: Phase::Disconnected,
            generation: None,
            resync_at: None,
            synced_once: false,
            monitor_requested: None,
            monitor_refused: None,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The connection the session is about, if any is up.
    pub fn connected_generation(&self) -> Option<u64> {
        match self.phase {
            Phase::Disconnected => None,
            _ => self.generation,
        }
    }

    /// A full sync has succeeded once, on any connection.
    pub fn has_synced(&self) -> bool {
        self.synced_once
    }

    /// A full sync has succeeded once and none is due: the switch holds the desired flows.
    pub fn is_ready(&self) -> bool {
        self.synced_once && self.resync_at.is_none()
    }

    /// Connection `generation` is up (its `Connected` event, or the switch handle holding it).
    pub fn connected(&mut self, generation: u64, now: Instant) {
        if self.generation.is_some_and(|g| g >= generation) {
            return;
        }
        self.generation = Some(generation);
        self.phase = Phase::Unsynced;
        self.resync_at = Some(now);
    }

    /// Connection `generation` went down.
    pub fn disconnected(&mut self, generation: u64) {
        if self.generation == Some(generation) {
            self.phase = Phase::Disconnected;
        }
    }

    /// The outcome of the [`Action::FullSync`] or [`Action::Delta`] sent on `generation`.
    pub fn sync_finished(&mut self, generation: u64, ok: bool, now: Instant) {
        if self.generation != Some(generation) {
            return;
        }
        let full = match self.phase {
            Phase::Syncing => true,
            Phase::Updating => false,
            _ => return,
        };
        if !ok {
            self.phase = Phase::Unsynced;
            self.resync_at = Some(now + RETRY_DELAY);
            return;
        }
        self.phase = Phase::Synced;
        if full {
            self.resync_at = None;
            self.synced_once = true;
        }
    }

    /// The switch of connection `generation` refused the flow monitor.
    pub fn monitor_refused(&mut self, generation: u64) {
        if self.generation == Some(generation) {
            self.monitor_refused = Some(generation);
        }
    }

    /// Flow monitor updates: a kovs flow changed by someone else is repaired soon. Our own
    /// changes come abbreviated and are not looked at.
    pub fn flows_changed(&mut self, updates: &[FlowUpdate], now: Instant) {
        let foreign = updates.iter().any(|u| match u {
            FlowUpdate::Added(f) | FlowUpdate::Deleted(f) | FlowUpdate::Modified(f) => {
                is_kovs_cookie(f.cookie)
            }
            FlowUpdate::Abbrev { .. } => false,
        });
        if foreign && self.resync_at.is_none() {
            self.resync_at = Some(now + REPAIR_DELAY);
        }
    }

    /// Whether [`BridgeSession::flows_changed`] scheduled a repair (for the log).
    pub fn repair_scheduled(&self) -> bool {
        self.resync_at.is_some()
    }

    /// Switch events were dropped: what changed is unknown.
    pub fn events_lost(&mut self, now: Instant) {
        self.resync_at = Some(now);
    }

    /// The periodic drift check: a connection without a working flow monitor is compared by
    /// a full sync.
    pub fn drift_check(&mut self, now: Instant) {
        if self.monitor_requested != self.generation || self.monitor_refused == self.generation {
            self.resync_at.get_or_insert(now);
        }
    }

    /// The next thing to do, given whether a delta is pending. Call until `None`.
    pub fn poll(&mut self, now: Instant, delta_pending: bool) -> Option<Action> {
        let generation = self.connected_generation()?;
        if self.monitor_requested != Some(generation) {
            self.monitor_requested = Some(generation);
            return Some(Action::RequestMonitor { generation });
        }
        let due = self.resync_at.is_some_and(|at| at <= now);
        match self.phase {
            Phase::Unsynced | Phase::Synced if due => {
                self.phase = Phase::Syncing;
                Some(Action::FullSync { generation })
            }
            Phase::Synced if delta_pending => {
                self.phase = Phase::Updating;
                Some(Action::Delta { generation })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowlib::wire::message::FlowUpdateFull;
    use flowlib::wire::{Instructions, Match};
    use pipelines::tables::COOKIE_MAGIC;

    fn t0() -> Instant {
        Instant::now()
    }

    /// Polls until nothing is left; the actions in order.
    fn drain(s: &mut BridgeSession, now: Instant, delta: bool) -> Vec<Action> {
        let mut v = Vec::new();
        while let Some(a) = s.poll(now, delta) {
            let in_flight = !matches!(a, Action::RequestMonitor { .. });
            v.push(a);
            if in_flight {
                break;
            }
        }
        v
    }

    fn synced_on(generation: u64, now: Instant) -> BridgeSession {
        let mut s = BridgeSession::new();
        s.connected(generation, now);
        assert_eq!(
            drain(&mut s, now, false),
            [
                Action::RequestMonitor { generation },
                Action::FullSync { generation }
            ]
        );
        s.sync_finished(generation, true, now);
        assert!(s.is_ready());
        s
    }

    fn update(cookie: u64) -> FlowUpdate {
        FlowUpdate::Deleted(FlowUpdateFull {
            reason: 0,
            priority: 100,
            idle_timeout: 0,
            hard_timeout: 0,
            table: 0,
            cookie,
            matches: Match::new(),
            instructions: Instructions::default(),
        })
    }

    #[test]
    fn nothing_without_a_connection() {
        let mut s = BridgeSession::new();
        assert_eq!(s.poll(t0(), true), None);
        assert!(!s.is_ready());
        assert_eq!(s.phase(), Phase::Disconnected);
    }

    #[test]
    fn a_new_connection_gets_a_monitor_and_a_full_sync_before_any_delta() {
        let now = t0();
        let mut s = BridgeSession::new();
        s.connected(1, now);
        // A delta is pending, yet the first thing after the monitor is the full sync.
        assert_eq!(
            drain(&mut s, now, true),
            [
                Action::RequestMonitor { generation: 1 },
                Action::FullSync { generation: 1 }
            ]
        );
        assert!(!s.is_ready());
        // Nothing else while it is in flight.
        assert_eq!(s.poll(now, true), None);
        s.sync_finished(1, true, now);
        assert!(s.is_ready());
        assert_eq!(s.phase(), Phase::Synced);
        assert_eq!(s.poll(now, false), None);
        assert_eq!(s.poll(now, true), Some(Action::Delta { generation: 1 }));
        assert_eq!(s.poll(now, true), None, "one delta in flight at a time");
        s.sync_finished(1, true, now);
        assert_eq!(s.phase(), Phase::Synced);
    }

    #[test]
    fn a_repeated_or_older_connected_event_changes_nothing() {
        let now = t0();
        // Picked up from the switch handle first, its Connected event handled after the sync.
        let mut s = synced_on(2, now);
        s.connected(2, now);
        s.connected(1, now);
        assert_eq!(s.phase(), Phase::Synced);
        assert_eq!(s.poll(now, true), Some(Action::Delta { generation: 2 }));
    }

    #[test]
    fn a_datapath_id_change_gets_the_new_connection_a_full_sync_before_deltas() {
        // ovs-vswitchd drops every connection when the datapath ID changes; the events may
        // come in either order relative to the switch handle's new connection.
        for disconnect_first in [true, false] {
            let now = t0();
            let mut s = synced_on(1, now);
            if disconnect_first {
                s.disconnected(1);
                assert_eq!(s.poll(now, true), None, "no connection, nothing to send");
                s.connected(2, now);
            } else {
                s.connected(2, now);
                s.disconnected(1); // late: about the old connection
            }
            assert_eq!(
                drain(&mut s, now, true),
                [
                    Action::RequestMonitor { generation: 2 },
                    Action::FullSync { generation: 2 }
                ]
            );
            s.sync_finished(2, true, now);
            assert_eq!(s.poll(now, true), Some(Action::Delta { generation: 2 }));
        }
    }

    #[test]
    fn a_connection_dropped_mid_sync_leaves_the_next_one_unsynced() {
        let now = t0();
        for outcome in [true, false] {
            let mut s = BridgeSession::new();
            s.connected(1, now);
            drain(&mut s, now, false);
            assert_eq!(s.phase(), Phase::Syncing);
            s.disconnected(1);
            s.connected(2, now);
            // The old connection's sync ends (either way) after the new one is up: ignored.
            s.sync_finished(1, outcome, now);
            assert!(!s.is_ready(), "the new connection has had no sync");
            assert_eq!(s.phase(), Phase::Unsynced);
            assert_eq!(
                drain(&mut s, now, true),
                [
                    Action::RequestMonitor { generation: 2 },
                    Action::FullSync { generation: 2 }
                ]
            );
        }
    }

    #[test]
    fn a_failed_sync_is_retried_later_and_sends_no_delta_meanwhile() {
        let now = t0();
        // A failed delta.
        let mut s = synced_on(1, now);
        assert_eq!(s.poll(now, true), Some(Action::Delta { generation: 1 }));
        s.sync_finished(1, false, now);
        assert_eq!(s.phase(), Phase::Unsynced);
        assert_eq!(s.poll(now, true), None, "not the delta, not at once");
        assert_eq!(s.poll(now + RETRY_DELAY / 2, true), None);
        assert_eq!(
            s.poll(now + RETRY_DELAY, true),
            Some(Action::FullSync { generation: 1 })
        );
        // A failed full sync: the same delay again.
        let later = now + RETRY_DELAY;
        s.sync_finished(1, false, later);
        assert_eq!(s.poll(later, true), None);
        assert_eq!(
            s.poll(later + RETRY_DELAY, false),
            Some(Action::FullSync { generation: 1 })
        );
        s.sync_finished(1, true, later + RETRY_DELAY);
        assert!(s.is_ready());
    }

    #[test]
    fn a_retry_keeps_its_delay_when_the_same_connection_is_seen_again() {
        let now = t0();
        let mut s = BridgeSession::new();
        s.connected(3, now);
        drain(&mut s, now, false);
        s.sync_finished(3, false, now);
        // Its Connected event arrives after the failure.
        s.connected(3, now);
        assert_eq!(s.poll(now, false), None);
    }

    #[test]
    fn a_refused_monitor_makes_the_drift_check_compare_by_dump() {
        let now = t0();
        let mut s = synced_on(1, now);
        // With the monitor running, the periodic check does nothing.
        s.drift_check(now);
        assert_eq!(s.poll(now, false), None);
        assert!(s.is_ready());
        s.monitor_refused(1);
        s.drift_check(now);
        assert_eq!(s.poll(now, false), Some(Action::FullSync { generation: 1 }));
        s.sync_finished(1, true, now);
        assert!(s.is_ready());
    }

    #[test]
    fn a_late_refusal_from_an_old_connection_does_not_mark_the_new_one() {
        let now = t0();
        let mut s = synced_on(1, now);
        s.connected(2, now);
        drain(&mut s, now, false);
        s.sync_finished(2, true, now);
        s.monitor_refused(1);
        s.drift_check(now);
        assert_eq!(s.poll(now, false), None);
    }

    #[test]
    fn a_foreign_change_of_a_kovs_flow_is_repaired_and_others_are_not() {
        let now = t0();
        let mut s = synced_on(1, now);
        s.flows_changed(&[FlowUpdate::Abbrev { xid: 7 }, update(0x1234)], now);
        assert!(!s.repair_scheduled(), "our own changes and non-kovs flows");
        s.flows_changed(&[update(COOKIE_MAGIC << 56 | 5)], now);
        assert!(s.repair_scheduled());
        assert!(!s.is_ready());
        assert_eq!(s.poll(now, true), Some(Action::Delta { generation: 1 }));
        s.sync_finished(1, true, now);
        assert_eq!(
            s.poll(now + REPAIR_DELAY, false),
            Some(Action::FullSync { generation: 1 })
        );
    }

    #[test]
    fn lost_events_force_a_full_sync_now() {
        let now = t0();
        let mut s = synced_on(1, now);
        s.events_lost(now);
        assert_eq!(s.poll(now, true), Some(Action::FullSync { generation: 1 }));
    }

    #[test]
    fn a_disconnect_of_the_current_connection_stops_everything_until_the_next() {
        let now = t0();
        let mut s = synced_on(4, now);
        s.disconnected(4);
        assert_eq!(s.connected_generation(), None);
        assert_eq!(s.poll(now, true), None);
        // A late Connected event for the dropped connection does not bring it back.
        s.connected(4, now);
        assert_eq!(s.poll(now, true), None);
        s.connected(5, now);
        assert_eq!(s.connected_generation(), Some(5));
    }
}
