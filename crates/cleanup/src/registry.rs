//! The ordered record of what a run created, or tried to create.

use std::sync::{Arc, Mutex, MutexGuard};

use keyhole_core::{Created, ObjectKind};

/// One entry of the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    /// The API server confirmed the creation (uid known).
    Confirmed(Created),
    /// A create was sent but its answer never confirmed it: the request may or may not have
    /// taken effect (a lost response, a timeout, a cancelled call). Teardown deletes the object
    /// of that name only if it carries `run_id` in its run label, i.e. if this run made it.
    Pending {
        /// Kind, namespace and name (`uid` is `None`).
        object: Created,
        /// The run id the object must be labelled with to count as ours.
        run_id: String,
    },
}

impl Entry {
    pub(crate) fn object(&self) -> &Created {
        match self {
            Self::Confirmed(o) | Self::Pending { object: o, .. } => o,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    entries: Vec<Entry>,
    torn_down: bool,
}

/// The run's objects in creation order. Cheap to clone and shared between the code creating
/// objects and every cleanup trigger.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    state: Arc<Mutex<State>>,
}

fn same_slot(a: &Created, b: &Created) -> bool {
    a.kind == b.kind && a.namespace == b.namespace && a.name == b.name
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

    /// Records that a create of `kind` `namespace/name` is about to be sent by the run
    /// `run_id`. Call it *before* the request: if the answer is lost (dropped connection,
    /// timeout, cancellation) the object may exist without the run ever learning its uid, and
    /// teardown then looks it up by name and deletes it only if its run label says `run_id`
    /// (run ids are random, so the label proves the object is this run's). A later
    /// [`Registry::register`] of the same object replaces this entry.
    pub fn attempting(&self, kind: ObjectKind, namespace: &str, name: &str, run_id: &str) {
        let object = Created {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
            uid: None,
        };
        let mut s = self.lock();
        if !s.entries.iter().any(|e| same_slot(e.object(), &object)) {
            s.entries.push(Entry::Pending {
                object,
                run_id: run_id.to_string(),
            });
        }
    }

    /// Records a created object. Call it right after the API server confirmed the creation,
    /// before doing anything else that can fail. It takes the place of a pending
    /// [`Registry::attempting`] entry for the same object (keeping its position in the order).
    pub fn register(&self, object: Created) {
        let mut s = self.lock();
        match s
            .entries
            .iter_mut()
            .find(|e| matches!(e, Entry::Pending { .. }) && same_slot(e.object(), &object))
        {
            Some(e) => *e = Entry::Confirmed(object),
            None => s.entries.push(Entry::Confirmed(object)),
        }
    }

    /// The confirmed objects, in creation order.
    pub fn objects(&self) -> Vec<Created> {
        self.lock()
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Confirmed(o) => Some(o.clone()),
                Entry::Pending { .. } => None,
            })
            .collect()
    }

    /// Creations whose outcome is unknown (sent, never confirmed), in order.
    pub fn pending(&self) -> Vec<Created> {
        self.lock()
            .entries
            .iter()
            .filter_map(|e| match e {
                Entry::Pending { object, .. } => Some(object.clone()),
                Entry::Confirmed(_) => None,
            })
            .collect()
    }

    pub(crate) fn entries(&self) -> Vec<Entry> {
        self.lock().entries.clone()
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
