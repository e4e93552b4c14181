//! The crate's single error type.

/// Everything that can go wrong building or rendering a report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// `keyhole_hdf` cannot judge the execution, so there are no numbers to report.
    #[error("cannot report on this HDF execution: {source}")]
    Judge {
        /// Why it cannot be judged.
        #[source]
        source: keyhole_hdf::HdfError,
    },

    /// Serialising the JSON or SARIF report failed.
    #[error("the report could not be serialised as JSON: {source}; report this as a keyhole bug")]
    Json {
        /// serde_json's description.
        #[source]
        source: serde_json::Error,
    },

    /// Rendering the HTML page failed.
    #[error("the HTML report could not be rendered: {source}; report this as a keyhole bug")]
    Html {
        /// askama's description.
        #[source]
        source: askama::Error,
    },
}
