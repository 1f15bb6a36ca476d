#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import NIOSSL
import NIOTLS
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
    public let clientAuth: (ca: String, required: Bool)?
    public let handshakeTimeout: TimeAmountMillis
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
    ///   - clientAuth: ask clients for a certificate, verified against `ca`; with `required`,
    ///     a client without one fails the handshake.
    ///   - handshakeTimeout: a connection whose handshake has not completed this long after it
    ///     opened is closed.
    public init(certificates: [TLSCertificate], names: [[String]], defaultIndex: Int, minVersion: String,
                applicationProtocols: [String] = ["http/1.1"], clientAuth: (ca: CABundle, required: Bool)? = nil,
                handshakeTimeout: TimeAmountMillis = 10_000) throws {
        precondition(!certificates.isEmpty && names.count == certificates.count && certificates.indices.contains(defaultIndex))
        self.certificates = certificates.indices.map { i in
            TLSCertificateInfo(names: names[i], certFile: certificates[i].certFile, keyFile: certificates[i].keyFile,
                               notAfter: certificates[i].notAfter, isDefault: i == defaultIndex)
        }
        self.minVersion = minVersion
        self.applicationProtocols = applicationProtocols
        self.clientAuth = clientAuth.map { ($0.ca.file, $0.required) }
        self.handshakeTimeout = handshakeTimeout
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
        if let auth = clientAuth {
            // Optional: a certificate that is presented must verify (else the handshake fails);
            // none at all is accepted, and routes with `require_client_cert` refuse the request.
            config.certificateVerification = auth.required ? .noHostnameVerification : .optionalVerification
            config.trustRoots = .certificates(auth.ca.certificates)
            // The CertificateRequest names the acceptable CAs, so a client with several
            // certificates offers the right one.
            config.sendCANameList = true
        }
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
        try pipeline.addHandler(ServerHandshakeWatcher(timeout: .milliseconds(handshakeTimeout), identifyClient: clientAuth != nil))
    }

    public func select(serverName: String?) -> TLSSelection { table.select(serverName) }
}

/// Sits behind the TLS server handler until the handshake completes: closes a connection whose
/// handshake has not completed within the listener's `handshake_timeout` (a client that sends
/// nothing, or a partial ClientHello, would otherwise hold a connection until the keep-alive
/// timeout), and on a listener with `client_auth` turns the verified client certificate into a
/// `TLSClientIdentity`, once per connection, sent down the pipeline as a user event. Then it
/// leaves the pipeline: requests pass one handler fewer.
final class ServerHandshakeWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let timeout: TimeAmount
    let identifyClient: Bool
    private var timer: Scheduled<Void>?

    init(timeout: TimeAmount, identifyClient: Bool) {
        self.timeout = timeout
        self.identifyClient = identifyClient
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        startTimer(context)
        context.fireChannelActive()
    }

    private func startTimer(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted? = event as? TLSUserEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        timer?.cancel()
        timer = nil
        if identifyClient, let tls = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self),
           let cert = tls.peerCertificate {
            context.fireUserInboundEventTriggered(ClientCertificateNames.identity(of: cert))
        }
        context.fireUserInboundEventTriggered(event)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }
}

/// A client certificate's subject and subjectAltName as text for templates and headers.
public enum ClientCertificateNames {
    public static func identity(of cert: NIOSSLCertificate) -> TLSClientIdentity {
        TLSClientIdentity(subject: subject(cert.subjectName), san: san(cert))
    }

    /// RFC 4514: the most specific attribute first (the reverse of the certificate's order),
    /// `,` between them, special characters escaped with `\`.
    static func subject(_ names: [SSLCertificateName]) -> String {
        var parts: [String] = []
        for n in names.reversed() {
            let key: String
            switch n.type {
            case .commonName: key = "CN"
            case .organization: key = "O"
            case .organizationalUnit: key = "OU"
            case .country: key = "C"
            case .state: key = "ST"
            case .city: key = "L"
            case .emailAddress: key = "emailAddress"
            case .userId: key = "UID"
            default: continue
            }
            parts.append(key + "=" + escape(n.value))
        }
        return parts.joined(separator: ",")
    }

    static func san(_ cert: NIOSSLCertificate) -> String {
        var parts: [String] = []
        for n in cert._subjectAlternativeNames() {
            let text = String(decoding: Array(n.contents), as: UTF8.self)
            switch n.nameType {
            case .dnsName: parts.append("DNS:" + printable(text))
            case .email: parts.append("email:" + printable(text))
            case .uri: parts.append("URI:" + printable(text))
            case .ipAddress:
                if let ip = ipText(Array(n.contents)) { parts.append("IP:" + ip) }
            default: continue
            }
        }
        return parts.joined(separator: ",")
    }

    /// RFC 4514 section 2.4 (`,+"\<>;=` escaped, and a leading `#` or space, a trailing space),
    /// and control characters as `\XX` so the text is always safe in a header value.
    static func escape(_ v: String) -> String {
        var out = ""
        let scalars = Array(v.unicodeScalars)
        for (i, s) in scalars.enumerated() {
            if s.value < 0x20 || s.value == 0x7f {
                out += "\\" + String(s.value, radix: 16, uppercase: true).leftPadded(2)
            } else if ",+\"\\<>;=".unicodeScalars.contains(s) || (i == 0 && (s == " " || s == "#")) || (i == scalars.count - 1 && s == " ") {
                out += "\\" + String(s)
            } else {
                out.unicodeScalars.append(s)
            }
        }
        return out
    }

    /// An IP address SAN's 4 or 16 bytes as text (`10.0.0.1`, `2001:db8::1`).
    static func ipText(_ b: [UInt8]) -> String? {
        switch b.count {
        case 4:
            return b.map(String.init).joined(separator: ".")
        case 16:
            var sin6 = in6_addr()
            withUnsafeMutableBytes(of: &sin6) { $0.copyBytes(from: b) }
            var buf = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
            guard inet_ntop(AF_INET6, &sin6, &buf, socklen_t(buf.count)) != nil else { return nil }
            return String(cString: buf)
        default:
            return nil
        }
    }

    /// SAN text with control characters and commas escaped (`\XX`).
    static func printable(_ v: String) -> String {
        var out = ""
        for s in v.unicodeScalars {
            if s.value < 0x20 || s.value == 0x7f || s == "," { out += "\\" + String(s.value, radix: 16, uppercase: true).leftPadded(2) }
            else { out.unicodeScalars.append(s) }
        }
        return out
    }
}

extension String {
    func leftPadded(_ n: Int) -> String { count >= n ? self : String(repeating: "0", count: n - count) + self }
}
