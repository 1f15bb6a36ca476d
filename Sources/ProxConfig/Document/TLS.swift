import ProxCore
import ProxTLS

/// `listeners[].tls`: the listener terminates TLS and serves HTTPS only.
struct ListenerTLSConfig: ConfigObject {
    var certificates: [CertificateConfig] = []
    var certificatesDir: Positioned<String>?
    var minVersion = "1.2"
    var node: ConfigNode?

    static let schemaName = "ListenerTLS"
    static let doc = "TLS termination: the listener serves HTTPS only (TLS 1.2 and 1.3, through swift-nio-ssl's BoringSSL). Each handshake gets the certificate whose names match the ClientHello's SNI: an exact name first, then a wildcard (`*.example.com` covers one label: `a.example.com`, not `a.b.example.com` nor `example.com`), else the default certificate. TLS 1.2 uses ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 only; TLS 1.3 its three standard suites. ALPN offers `http/1.1`. Certificates are read and checked when the config is compiled (`prox validate`, start, every reload): a reload with new files serves them to new connections, connections already open keep theirs, and a reload with a bad certificate is refused like any invalid config."

    static var fields: [ConfigField<Self>] {[
        .field("certificates", \.certificates, ConfigType.object(CertificateConfig.self).list(), default: "none",
               doc: "Certificates with their keys. The default certificate is the one with `default: true`, else the first listed (else the first of `certificates_dir`)."),
        .field("certificates_dir", \.certificatesDir, ConfigType.string(minLength: 1).positioned,
               doc: "A directory whose every certificate file `NAME.crt` or `NAME.pem` is served with its key `NAME.key`, by file name order; their names come from the certificates. Read again on every reload. Relative to the config file's directory."),
        .field("min_version", \.minVersion, ConfigType.oneOf(["1.2", "1.3"]),
               doc: "Lowest TLS version accepted: `\"1.2\"` or `\"1.3\"` (quoted: unquoted, YAML reads a number). Older clients fail the handshake; TLS 1.0 and 1.1 are never accepted."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if certificates.isEmpty && certificatesDir == nil {
            decoder.error(node, "TLS needs at least one certificate", hint: "give `certificates: [{cert: FILE, key: FILE}]` or `certificates_dir: DIR`")
        }
        let defaults = certificates.filter(\.isDefault)
        if defaults.count > 1, let n = defaults[1].node?["default"] {
            decoder.error(n, "only one certificate can be the default", hint: "the first `default: true` is at line \(defaults[0].node?["default"]?.mark.line ?? 0)")
        }
    }
}

/// One certificate of a TLS listener.
struct CertificateConfig: ConfigObject {
    var cert: Positioned<String>?
    var key: Positioned<String>?
    var names: [Positioned<String>]?
    var isDefault = false
    var node: ConfigNode?

    static let schemaName = "Certificate"
    static let doc = "A certificate (with any intermediates) and its private key, PEM files. Relative paths are read from the config file's directory. Compiling the config checks that both parse, that the key matches the certificate, and the dates: an expired certificate is an error, one that expires within 30 days a warning."

    static var sniName: ConfigType<Positioned<String>> {
        ConfigType.string(minLength: 1).map({ s, node, d in
            let n = s.lowercased()
            guard SNINames.isValid(n) else {
                d.error(node, "'\(s)' is not a host name a certificate can be selected by",
                        hint: "a DNS name such as `shop.example.com`, or `*.example.com` (one label); no IP addresses, no port")
                return nil
            }
            return Positioned(n, node: node)
        }).describing(docName: "string")
    }

    static var fields: [ConfigField<Self>] {[
        .field("cert", \.cert, ConfigType.string(minLength: 1).positioned, required: true,
               doc: "The certificate file (PEM): the leaf first, then intermediates."),
        .field("key", \.key, ConfigType.string(minLength: 1).positioned, required: true,
               doc: "Its private key (PEM, unencrypted; RSA or EC)."),
        .field("names", \.names, sniName.list(minItems: 1), default: "the certificate's DNS names",
               doc: "The SNI names this certificate is chosen for, instead of the names it holds (its subjectAltName DNS names, else its common name). Exact (`shop.example.com`) or wildcard (`*.example.com`, one label). Each name may belong to one certificate of the listener."),
        .field("default", \.isDefault, .bool,
               doc: "The certificate for a ClientHello without SNI or with a name no certificate has. At most one; without it, the first certificate."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
}

/// `listeners[].l4_routes[]`: one L4 SNI route.
struct L4RouteConfig: ConfigObject {
    var id: Positioned<String>?
    var sni: [Positioned<String>]?
    var noSNI = false
    var pass: Positioned<String>?
    var drop = false
    var idleTimeout = L4Table.defaultIdleTimeout
    var node: ConfigNode?

    static let schemaName = "L4Route"
    static let doc = "Which ClientHellos an L4 route takes (by SNI, before any TLS is terminated) and what happens to their connections. Names follow certificate selection: exact (`legacy.example.com`, case-insensitive, a trailing dot ignored) or a wildcard covering one label (`*.example.com`: `a.example.com`, not `a.b.example.com` nor `example.com`). Routes are tried in order; the first that matches decides."
    static let rules: [ConfigRule] = [.exactlyOne(["pass", "drop"])]

    static var fields: [ConfigField<Self>] {[
        .field("id", \.id, ConfigType.identifier.positioned, required: true, doc: "Name of the route in logs and dry-run; unique among the listener's `l4_routes`."),
        .field("sni", \.sni, CertificateConfig.sniName.list(minItems: 1), default: "none",
               doc: "The server names (SNI) this route takes. Each name in at most one L4 route of the listener."),
        .field("no_sni", \.noSNI, .constTrue, doc: "Also take a ClientHello without a server name."),
        .field("pass", \.pass, ConfigType.identifier.positioned,
               doc: "Id of the pool to relay the raw TCP stream to: the pool's balancer picks an endpoint and its `timeouts.connect` applies; bytes flow both ways unchanged, with backpressure, until either side closes (the other is then flushed and closed). A failed connect closes the client's connection. The upstream terminates TLS with its own certificate."),
        .field("drop", \.drop, .constTrue, doc: "Close the connection."),
        .field("idle_timeout", \.idleTimeout, .duration(min: 1),
               doc: "With `pass`: a relayed connection with no byte either way for this long is closed (nginx's stream `proxy_timeout` default)."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if sni == nil && !noSNI {
            decoder.error(node, "an L4 route needs `sni` names or `no_sni: true`", hint: "it would take no connection")
        }
        if drop, let n = node["idle_timeout"] {
            decoder.warning(n, "`idle_timeout` only matters with `pass`")
        }
    }
}
