import Foundation
import NIOCore
import NIOSSL
import NIOTLS
import ProxCore

/// A pool's TLS to its upstreams over swift-nio-ssl (BoringSSL): one client context, made when
/// the config compiles, shared by every connection and event loop of the pool's snapshot.
///
/// Verification is on unless the config says `insecure_skip_verify`: the chain must reach a
/// certificate of the CA bundle (the system's trust store when the pool names none), and the
/// leaf must carry the server name (a DNS name of its subjectAltName) or, with no name, the
/// peer's IP address (an IP address of its subjectAltName).
public final class SSLUpstreamTLS: UpstreamTLS {
    public let summary: UpstreamTLSSummary
    public let key: String
    let context: NIOSSLContext

    /// - Parameters:
    ///   - trustRoots: the CA bundle's certificates; nil: the system's trust store.
    ///   - client: the client certificate chain and key offered to upstreams that ask (mTLS).
    public init(trustRoots: CABundle?, verify: Bool, client: TLSCertificate?, minVersion: String,
                summary: UpstreamTLSSummary) throws {
        var config = TLSConfiguration.makeClientConfiguration()
        config.minimumTLSVersion = minVersion == "1.3" ? .tlsv13 : .tlsv12
        config.maximumTLSVersion = .tlsv13
        config.cipherSuites = SSLListenerTLS.tls12CipherSuites
        config.certificateVerification = verify ? .fullVerification : .none
        config.trustRoots = trustRoots.map { .certificates($0.certificates) } ?? .default
        if let client {
            config.certificateChain = client.chain.map { .certificate($0) }
            config.privateKey = .privateKey(client.key)
        }
        // No ALPN: the upstream side speaks HTTP/1.1 only (an `h2` upstream is a later issue).
        // A pooled connection closed by Prox sends close_notify; an upstream that does not answer
        // it holds the socket this long at most.
        config.shutdownTimeout = .seconds(1)
        self.context = try NIOSSLContext(configuration: config)
        self.summary = summary
        // By content, not file name: a reload with a renewed client certificate or another CA
        // bundle gets fresh connections; one with the same files keeps the pooled ones.
        var h = FNV1a()
        for c in trustRoots?.certificates ?? [] { h.add((try? c.toDERBytes()) ?? []) }
        h.add([0xff])
        for c in client?.chain ?? [] { h.add((try? c.toDERBytes()) ?? []) }
        self.key = "\(trustRoots == nil ? "system" : "ca"),\(verify ? "verify" : "noverify"),\(minVersion),\(String(h.value, radix: 16))"
    }

    /// The system trust store swift-nio-ssl reads when a pool names no `ca` (its search list on
    /// Linux); nil when there is none.
    public static var systemTrustStore: String? {
        #if os(Linux)
        ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"].first { FileManager.default.fileExists(atPath: $0) }
        #else
        "the system keychain"
        #endif
    }

    public func explainFailure(_ error: any Error) -> String? {
        guard error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError else { return nil }
        return UpstreamHandshakeWatcher.explain(error, serverName: nil, offersClientCertificate: summary.clientCertificate != nil)
    }

    public func addClientHandler(to channel: any Channel, serverName: String?) throws -> EventLoopFuture<Void> {
        let promise = channel.eventLoop.makePromise(of: Void.self)
        let pipeline = channel.pipeline.syncOperations
        try pipeline.addHandler(NIOSSLClientHandler(context: context, serverHostname: serverName))
        try pipeline.addHandler(UpstreamHandshakeWatcher(promise: promise, serverName: serverName,
                                                         offersClientCertificate: summary.clientCertificate != nil))
        return promise.futureResult
    }
}

/// Sits behind the TLS client handler until the handshake ends: completes the handshake's
/// promise (with the reason, said plainly, when it fails), then leaves the pipeline, so a pooled
/// connection's reads pass one handler fewer.
final class UpstreamHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    private var promise: EventLoopPromise<Void>?
    let serverName: String?
    let offersClientCertificate: Bool

    init(promise: EventLoopPromise<Void>, serverName: String?, offersClientCertificate: Bool) {
        self.promise = promise
        self.serverName = serverName
        self.offersClientCertificate = offersClientCertificate
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted? = event as? TLSUserEvent, let p = promise {
            promise = nil
            p.succeed(())
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let p = promise {
            promise = nil
            p.fail(UpstreamTLSHandshakeError(Self.explain(error, serverName: serverName, offersClientCertificate: offersClientCertificate)))
            context.close(promise: nil)
            return
        }
        context.fireErrorCaught(error)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let p = promise {
            promise = nil
            p.fail(UpstreamTLSHandshakeError("the upstream closed the connection during the TLS handshake"))
        }
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // Removed before the handshake ended (the channel went away): never leave it pending.
        if let p = promise {
            promise = nil
            p.fail(UpstreamTLSHandshakeError("the connection went away during the TLS handshake"))
        }
    }

    /// The handshake error in words an operator can act on, with BoringSSL's own text after.
    static func explain(_ error: any Error, serverName: String?, offersClientCertificate: Bool) -> String {
        let raw = "\(error)"
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return serverName.map { "the upstream's certificate is not valid for the name '\($0)' (\(raw))" }
                ?? "the upstream's certificate holds no IP address matching the endpoint's; give the pool `tls.sni` to check a name instead (\(raw))"
        }
        if raw.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the upstream's certificate could not be verified: it is not signed by a CA of the pool's bundle, or it has expired (\(raw))"
        }
        if raw.contains("WRONG_VERSION_NUMBER") || raw.contains("PACKET_LENGTH_TOO_LONG") {
            return "the upstream did not answer with TLS: is this port cleartext HTTP? (\(raw))"
        }
        if raw.contains("PROTOCOL_VERSION") || raw.contains("UNSUPPORTED_PROTOCOL") {
            return "the upstream and the pool's `tls.min_version` have no TLS version in common (\(raw))"
        }
        if raw.contains("ALERT_CERTIFICATE_REQUIRED") || raw.contains("ALERT_HANDSHAKE_FAILURE") || raw.contains("ALERT_BAD_CERTIFICATE")
            || raw.contains("ALERT_UNKNOWN_CA") || raw.contains("ALERT_ACCESS_DENIED") {
            return offersClientCertificate
                ? "the upstream refused the handshake; it may not accept the pool's client certificate (\(raw))"
                : "the upstream refused the handshake; it may require a client certificate (the pool's `tls.cert` and `tls.key`) (\(raw))"
        }
        if case NIOSSLError.uncleanShutdown? = error as? NIOSSLError {
            return "the upstream closed the connection during the TLS handshake"
        }
        return "TLS handshake failed: \(raw)"
    }
}

/// 64-bit FNV-1a: identifies file contents in a pooling key (not a security property).
struct FNV1a {
    var value: UInt64 = 0xcbf2_9ce4_8422_2325
    mutating func add(_ bytes: [UInt8]) {
        for b in bytes { value = (value ^ UInt64(b)) &* 0x100_0000_01b3 }
    }
}
