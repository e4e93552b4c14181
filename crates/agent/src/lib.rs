//! `keyhole-agent`: the engine run against `/proc/<pid>/root` inside a debug or sidecar container,
//! with no Kubernetes dependency and no network use, results as HDF on stdout.
//!
//! Not implemented yet (issue "engine"): there is no binary so far, so nothing can be mistaken
//! for a working agent.
