//! The sink's and its monitor source's state (RUNNING, IDLE, SUSPENDED)
//! as PulseAudio computes it, kept on the control side where the streams
//! are known, and the `change` events a transition posts.
//!
//! PulseAudio's rules (observed on PulseAudio 16.1 with `pactl subscribe`
//! and `pactl list sinks`/`sources`, module-null-sink, no
//! module-suspend-on-idle):
//! - a sink is RUNNING while at least one of its sink inputs is not
//!   corked (a prebuffering or starved stream counts), IDLE otherwise;
//! - its monitor source is RUNNING while at least one source output on it
//!   is not corked, IDLE otherwise (a playing sink alone leaves it IDLE);
//! - SUSPEND_SINK suspends the sink and its monitor, SUSPEND_SOURCE the
//!   monitor only; suspended wins over the streams;
//! - each transition posts one `change` on that device, after the stream's
//!   `new` when a stream starts it, before the stream's `remove` when a
//!   stream's end stops it, and after the stream's own `change` when a
//!   CORK or uncork does (the registry orders them so).

/// A device's state (`pa_sink_state_t` / `pa_source_state_t` as the wire
/// carries it from v15: RUNNING 0, IDLE 1, SUSPENDED 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum State {
    /// Some stream is playing (or recording).
    Running,
    /// Nothing uses it.
    #[default]
    Idle,
    /// Suspended by SUSPEND_SINK / SUSPEND_SOURCE.
    Suspended,
}

impl State {
    /// The number the sink and source records carry.
    pub fn code(self) -> u32 {
        match self {
            State::Running => 0,
            State::Idle => 1,
            State::Suspended => 2,
        }
    }

    fn of(suspended: bool, used: bool) -> Self {
        match (suspended, used) {
            (true, _) => State::Suspended,
            (false, true) => State::Running,
            (false, false) => State::Idle,
        }
    }
}

/// The sink's and the monitor's suspend flags and last published states.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DeviceStates {
    /// SUSPEND_SINK is in force (the monitor is suspended with it).
    pub sink_suspended: bool,
    /// SUSPEND_SOURCE is in force on the monitor.
    pub monitor_suspended: bool,
    /// The sink's state as last published.
    pub sink: State,
    /// The monitor's state as last published.
    pub monitor: State,
}

impl DeviceStates {
    /// Recomputes both states from whether the sink and the monitor have
    /// an uncorked stream; returns which changed (sink, monitor).
    pub fn update(&mut self, sink_used: bool, monitor_used: bool) -> (bool, bool) {
        let sink = State::of(self.sink_suspended, sink_used);
        let monitor = State::of(self.sink_suspended || self.monitor_suspended, monitor_used);
        let changed = (sink != self.sink, monitor != self.monitor);
        self.sink = sink;
        self.monitor = monitor;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_and_suspends_make_the_states() {
        let mut d = DeviceStates::default();
        assert_eq!(d.update(false, false), (false, false), "idle to idle");
        assert_eq!(d.update(true, false), (true, false));
        assert_eq!((d.sink, d.monitor), (State::Running, State::Idle));
        assert_eq!(d.update(true, true), (false, true));
        assert_eq!(d.monitor, State::Running);
        // Suspending the sink suspends its monitor, whatever plays.
        d.sink_suspended = true;
        assert_eq!(d.update(true, true), (true, true));
        assert_eq!((d.sink, d.monitor), (State::Suspended, State::Suspended));
        d.sink_suspended = false;
        d.monitor_suspended = true;
        assert_eq!(d.update(false, true), (true, false));
        assert_eq!((d.sink, d.monitor), (State::Idle, State::Suspended));
        assert_eq!(
            [State::Running, State::Idle, State::Suspended].map(State::code),
            [0, 1, 2]
        );
    }
}
