import NIOCore

/// A pool's TLS to its upstreams as compiled: the client context made once (CA bundle, client
/// certificate, versions), ready for handshakes. Implemented by `ProxTLS` over swift-nio-ssl;
/// ProxCore only names it, so that a snapshot holds it while ProxCore links no TLS library.
public protocol UpstreamTLS: AnyObject, Sendable {
    /// Adds the TLS client handler to a new upstream connection's pipeline, before the HTTP/1
    /// framer, and returns the handshake's outcome: it succeeds once the handshake completed
    /// (the peer's certificate verified, unless verification is off) and fails with an
    /// `UpstreamTLSHandshakeError` otherwise (the channel is then closed). Called on the
    /// channel's event loop, once per connection made (a pooled connection is not shaken again).
    /// `serverName`: the name sent as SNI and checked against the certificate; nil sends no SNI
    /// and checks the certificate's IP addresses against the peer's.
    func addClientHandler(to channel: any Channel, serverName: String?) throws -> EventLoopFuture<Void>
    /// An error the TLS handler raised on an established connection (an alert), in plain words;
    /// nil when `error` is not TLS's.
    func explainFailure(_ error: any Error) -> String?
    /// What the pool's TLS does, for dry-run and logs (CA, client certificate, versions).
    var summary: UpstreamTLSSummary { get }
    /// Identifies the settings (files by content, versions, verification): connections made with
    /// equal keys are interchangeable, so idle connections are pooled by endpoint and key.
    var key: String { get }
}

/// A pool's upstream TLS settings as dry-run shows them.
public struct UpstreamTLSSummary: Sendable, Equatable {
    /// The CA bundle file; nil: the system's trust store.
    public var ca: String?
    /// False with `insecure_skip_verify`.
    public var verify: Bool
    /// The configured SNI name; nil: each endpoint's host name (none for an IP address).
    public var sni: String?
    /// The client certificate file, for upstreams that require one (mTLS).
    public var clientCertificate: String?
    /// `1.2` or `1.3`.
    public var minVersion: String

    public init(ca: String?, verify: Bool, sni: String?, clientCertificate: String?, minVersion: String) {
        self.ca = ca
        self.verify = verify
        self.sni = sni
        self.clientCertificate = clientCertificate
        self.minVersion = minVersion
    }
}

/// Why a TLS handshake with an upstream failed, said for the error log: the peer's certificate
/// not trusted, not matching the name, refused by the peer, or the connection cut.
public struct UpstreamTLSHandshakeError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
