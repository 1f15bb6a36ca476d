import NIOCore

/// A listener's TLS as compiled: certificates and keys loaded and checked, the server contexts
/// made, ready to serve handshakes. Implemented by `ProxTLS` over swift-nio-ssl; ProxCore only
/// names it, so that a snapshot holds it while ProxCore (what custom filters import) links no
/// TLS library.
public protocol ListenerTLS: AnyObject, Sendable {
    /// Adds the TLS server handler to a new connection's pipeline, before the HTTP/1 framer.
    /// Called once per accepted connection, on its event loop.
    func addServerHandler(to pipeline: ChannelPipeline.SynchronousOperations) throws
    /// The certificates, in the order the config gives them (a `certificates_dir`'s by file name).
    var certificates: [TLSCertificateInfo] { get }
    /// The certificate a ClientHello naming `serverName` gets (nil: a ClientHello without SNI).
    func select(serverName: String?) -> TLSSelection
    /// The lowest TLS version accepted: `1.2` or `1.3`.
    var minVersion: String { get }
    /// The ALPN protocols offered, in preference order (`http/1.1` only, until HTTP/2).
    var applicationProtocols: [String] { get }
    /// Client certificates (mTLS): the CA bundle file and whether a certificate is `required` or
    /// `optional`; nil: none asked for.
    var clientAuth: (ca: String, required: Bool)? { get }
    /// A handshake not complete this long after the connection opened is closed.
    var handshakeTimeout: TimeAmountMillis { get }
}

/// A client certificate the listener verified against its `client_auth` CA bundle, as
/// templates see it (`{tls.client_subject}`, `{tls.client_san}`). Made once per connection,
/// when the handshake completes, and shared by the connection's requests. Sent by the TLS
/// handler down the pipeline as a user event.
public final class TLSClientIdentity: Sendable {
    /// The subject's distinguished name as RFC 4514 writes it: most specific first,
    /// `CN=alice,OU=eng,O=Example`.
    public let subject: String
    /// The subjectAltName entries, comma-separated: `DNS:a.example,IP:10.0.0.1,URI:spiffe://x,email:a@example`.
    public let san: String

    public init(subject: String, san: String) {
        self.subject = subject
        self.san = san
    }
}

/// One certificate of a TLS listener, as dry-run and logs show it.
public struct TLSCertificateInfo: Sendable {
    /// The SNI names it serves, lowercased: the config's `names`, else the certificate's DNS
    /// names (SAN), else its common name. `*.example.com` stands for one label.
    public var names: [String]
    /// The certificate and key files, as the config names them (relative to the config file).
    public var certFile: String
    public var keyFile: String
    /// End of validity, seconds since 1970.
    public var notAfter: Int64
    public var isDefault: Bool

    public init(names: [String], certFile: String, keyFile: String, notAfter: Int64, isDefault: Bool) {
        self.names = names
        self.certFile = certFile
        self.keyFile = keyFile
        self.notAfter = notAfter
        self.isDefault = isDefault
    }
}

/// The outcome of SNI selection: which certificate, and why.
public struct TLSSelection: Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        /// A name of the certificate equals the SNI name.
        case exact(String)
        /// A wildcard name (`*.example.com`) of the certificate covers the SNI name's first label.
        case wildcard(String)
        /// No name matches, or the ClientHello has no SNI: the listener's default certificate.
        case fallback
    }
    /// Index into `ListenerTLS.certificates`.
    public var index: Int
    public var reason: Reason

    public init(index: Int, reason: Reason) {
        self.index = index
        self.reason = reason
    }
}
