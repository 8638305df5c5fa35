//! Background threads: work that may wait while the services run.
//!
//! The JSONL writer and the terminal only copy lines somewhere else, and each
//! line is safe in memory once the state thread has it. They run under
//! `SCHED_IDLE`, so a pump or a service that wakes up takes the CPU from them
//! at once: during a flood the pumps keep the pipes empty and the disk and the
//! terminal catch up afterwards. They are not starved: an idle-policy thread
//! still gets a small share of a busy CPU (about 0.3% per competing thread).

use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy, ThreadPriority,
    ThreadSchedulePolicy,
};

/// Puts the calling thread under `SCHED_IDLE`. Where that is refused (a
/// sandbox that filters the call) the thread keeps the normal policy, which
/// is slower under floods but otherwise the same.
pub fn run_in_background() {
    let _ = set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    );
}
