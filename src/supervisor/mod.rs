//! Child processes: spawning, draining their pipes, waiting for them, probing
//! their readiness and stopping them. Every thread here reports facts to the
//! state thread over the bus and owns nothing the state thread owns.

pub mod children;
pub mod port_owner;
mod probe;
mod pump;
mod spawn;
mod stop;

pub use probe::{spawn_probe, ProbeJob};
pub use spawn::{launch, SpawnError};

pub use stop::{run_stop_cmd, signal_group, GroupSignal};
