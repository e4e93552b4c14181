//! Object storage: JSON objects keyed by (resource, namespace, name), in etcd key order, with the
//! global resourceVersion counter and uid generation.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::resources::{RESOURCES, ResourceDef};

/// (index into `RESOURCES`, namespace or "" for cluster-scoped, name).
pub(crate) type Key = (usize, String, String);

/// Every stored object, as the JSON the server returns.
#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) objects: BTreeMap<Key, Value>,
    rv: u64,
}

/// The index of a resource definition in `RESOURCES`.
pub(crate) fn index_of(def: &ResourceDef) -> usize {
    RESOURCES.iter().position(|r| r == def).unwrap_or_default()
}

impl Store {
    pub(crate) fn get(&self, res: &ResourceDef, ns: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&(index_of(res), ns.to_owned(), name.to_owned()))
    }

    /// Objects of one resource, in one namespace or (None) all of them.
    pub(crate) fn list<'a>(
        &'a self,
        res: &ResourceDef,
        ns: Option<&'a str>,
    ) -> impl Iterator<Item = &'a Value> + 'a {
        let idx = index_of(res);
        self.objects
            .iter()
            .filter(move |((r, n, _), _)| *r == idx && ns.is_none_or(|want| want == n))
            .map(|(_, v)| v)
    }

    /// Bumps and returns the global resourceVersion.
    pub(crate) fn next_rv(&mut self) -> String {
        self.rv += 1;
        self.rv.to_string()
    }

    /// The current (latest) resourceVersion, as a list's `metadata.resourceVersion`.
    pub(crate) fn current_rv(&self) -> String {
        self.rv.to_string()
    }
}

/// The random 128-bit uid of a new object, formatted as a v4 UUID.
pub(crate) fn new_uid() -> String {
    let b = random_bytes::<16>();
    let hex = hex::encode(b);
    // Version 4 / RFC 4122 variant bits, so the string looks like a real UUID.
    let v = format!("4{}", &hex[13..16]);
    let variant = format!("{:x}{}", (b[8] & 0x3) | 0x8, &hex[17..20]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        v,
        variant,
        &hex[20..32]
    )
}

/// Random bytes from the OS (the fake's tokens and uids must not repeat across tests).
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    // The OS RNG failing is not something a test can recover from; fall back to a counter so a
    // broken RNG yields distinct (if predictable) values rather than a panic inside a server.
    keyhole_core::random_bytes::<N>().unwrap_or_else(|_| {
        use std::sync::atomic::{AtomicU64, Ordering};
        static FALLBACK: AtomicU64 = AtomicU64::new(1);
        let n = FALLBACK.fetch_add(1, Ordering::Relaxed).to_le_bytes();
        std::array::from_fn(|i| n[i % 8] ^ (i as u8))
    })
}

/// The 5-character suffix `generateName` appends (Kubernetes' alphabet without vowels).
pub(crate) fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    random_bytes::<5>()
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// Labels of an object as a map (missing or malformed → empty).
pub(crate) fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj["metadata"]["labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}
