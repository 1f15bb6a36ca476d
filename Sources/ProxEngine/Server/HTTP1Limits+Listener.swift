import ProxCore

// Outside HTTP1/: the framer fuzz harness links that folder with ProxCore/HTTP only.
extension HTTP1Limits {
    /// A listener's limits: `serve` and `prox dry-run` build their parsers with this, so they
    /// cannot drift apart.
    public init(listener: ListenerSpec) {
        self.init(maxHeaderBytes: listener.maxHeaderBytes, maxHeaders: listener.maxHeaders, maxURIBytes: listener.maxURIBytes,
                  allowUnderscoresInHeaders: listener.allowUnderscoresInHeaders)
    }
}
