//! The ordered record of what a run created.

use std::sync::{Arc, Mutex, MutexGuard};

use keyhole_core::Created;

#[derive(Debug, Default)]
struct State {
    created: Vec<Created>,
    torn_down: bool,
}

/// The run's objects in creation order. Cheap to clone and shared between the code creating
/// objects and every cleanup trigger.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    state: Arc<Mutex<State>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock must not stop cleanup: the data is a plain list.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a created object. Call it right after the API server confirmed the creation,
    /// before doing anything else that can fail.
    pub fn register(&self, object: Created) {
        self.lock().created.push(object);
    }

    /// The registered objects, in creation order.
    pub fn objects(&self) -> Vec<Created> {
        self.lock().created.clone()
    }

    /// Claims the teardown: true exactly once, so concurrent triggers (a signal during an
    /// error path) never run two teardowns.
    pub(crate) fn claim_teardown(&self) -> bool {
        let mut s = self.lock();
        !std::mem::replace(&mut s.torn_down, true)
    }

    /// Whether teardown has been claimed.
    pub fn is_torn_down(&self) -> bool {
        self.lock().torn_down
    }
}
