import NIOCore
import NIOSSL
import ProxCore

/// A TLS listener's compiled TLS over swift-nio-ssl (BoringSSL): one server context, made when
/// the config compiles, shared by every connection and event loop of the listener until a reload
/// brings the next one (connections already open keep theirs).
///
/// The context carries the default certificate; with more than one certificate it also carries
/// a certificate callback that, once per handshake, looks the ClientHello's SNI up in an
/// `SNITable` and hands BoringSSL the chosen chain and key. A listener with one certificate pays
/// nothing for selection.
///
/// ALPN: the context offers `http/1.1` only. HTTP/2 adds `h2` here, and the engine's TLS
/// listener then puts NIOTLS's `ApplicationProtocolNegotiationHandler` after this handler to
/// pick the HTTP/1 or HTTP/2 pipeline per connection (docs/ARCHITECTURE.md).
public final class SSLListenerTLS: ListenerTLS {
    public let certificates: [TLSCertificateInfo]
    public let minVersion: String
    public let applicationProtocols: [String]
    public let table: SNITable
    let context: NIOSSLContext

    /// TLS 1.2 suites: ECDHE key exchange (forward secrecy) with AEAD ciphers only, ECDSA and RSA
    /// certificates, AES-GCM before ChaCha20 (Mozilla's "intermediate" list). TLS 1.3 has its own
    /// three AEAD suites, which BoringSSL does not let one change.
    public static let tls12CipherSuites = [
        "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
    ].joined(separator: ":")

    /// - Parameters:
    ///   - certificates: loaded and checked; `names[i]` the SNI names certificate i serves,
    ///     unique across them.
    ///   - defaultIndex: the certificate for a ClientHello without SNI or with a name no
    ///     certificate serves.
    public init(certificates: [TLSCertificate], names: [[String]], defaultIndex: Int, minVersion: String,
                applicationProtocols: [String] = ["http/1.1"]) throws {
        precondition(!certificates.isEmpty && names.count == certificates.count && certificates.indices.contains(defaultIndex))
        self.certificates = certificates.indices.map { i in
            TLSCertificateInfo(names: names[i], certFile: certificates[i].certFile, keyFile: certificates[i].keyFile,
                               notAfter: certificates[i].notAfter, isDefault: i == defaultIndex)
        }
        self.minVersion = minVersion
        self.applicationProtocols = applicationProtocols
        let table = SNITable(names: names, defaultIndex: defaultIndex)
        self.table = table
        let def = certificates[defaultIndex]
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: def.chain.map { .certificate($0) },
                                                              privateKey: .privateKey(def.key))
        config.minimumTLSVersion = minVersion == "1.3" ? .tlsv13 : .tlsv12
        config.maximumTLSVersion = .tlsv13
        config.cipherSuites = Self.tls12CipherSuites
        config.applicationProtocols = applicationProtocols
        // A close sends close_notify and waits for the peer's before the socket closes; a peer
        // that never answers holds the connection this long at most (5 s by default).
        config.shutdownTimeout = .seconds(1)
        if certificates.count > 1 {
            // Per certificate, the override BoringSSL applies to the handshake (nil: the default's).
            let overrides: [NIOSSLContextConfigurationOverride?] = certificates.indices.map { i in
                guard i != defaultIndex else { return nil }
                var o = NIOSSLContextConfigurationOverride()
                o.certificateChain = certificates[i].chain.map { .certificate($0) }
                o.privateKey = .privateKey(certificates[i].key)
                return o
            }
            config.sslContextCallback = { values, promise in
                let chosen = table.select(values.serverHostname)
                promise.succeed(overrides[chosen.index] ?? .noChanges)
            }
        }
        self.context = try NIOSSLContext(configuration: config)
    }

    public func addServerHandler(to pipeline: ChannelPipeline.SynchronousOperations) throws {
        try pipeline.addHandler(NIOSSLServerHandler(context: context))
    }

    public func select(serverName: String?) -> TLSSelection { table.select(serverName) }
}
