import ProxCore
import ProxTLS

/// `listeners[].tls`: the listener terminates TLS and serves HTTPS only.
struct ListenerTLSConfig: ConfigObject {
    var certificates: [CertificateConfig] = []
    var certificatesDir: Positioned<String>?
    var minVersion = "1.2"
    var clientAuth: ClientAuthConfig?
    var handshakeTimeout: Int64 = 10_000
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
        .field("client_auth", \.clientAuth, .object(ClientAuthConfig.self), default: "none (no client certificates asked for)",
               doc: "Ask clients for a certificate (mTLS) and verify it against a CA bundle. The verified certificate's subject and subjectAltName are `{tls.client_subject}` and `{tls.client_san}` in templates (read once per connection); they reach the upstream only through a header rule you write (`headers: {request: {set: {X-Client-Subject: \"{tls.client_subject}\"}}}`)."),
        .field("handshake_timeout", \.handshakeTimeout, .duration(min: 1),
               doc: "A connection whose TLS handshake has not completed this long after it opened is closed: a client that sends nothing, or part of a ClientHello, holds a connection no longer."),
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

/// `listeners[].tls.client_auth`: client certificates (mTLS).
struct ClientAuthConfig: ConfigObject {
    enum Mode: String, CaseIterable, Sendable { case required, optional }
    var ca: Positioned<String>?
    var mode: Mode = .required
    var node: ConfigNode?

    static let schemaName = "ClientAuth"
    static let doc = "Client certificates (mTLS): the listener asks every client for one, naming the CAs of `ca`. A certificate that is presented must chain to a certificate of `ca` and be within its dates, else the handshake fails. What happens to a client without one depends on `mode`."

    static var fields: [ConfigField<Self>] {[
        .field("ca", \.ca, ConfigType.string(minLength: 1).positioned, required: true,
               doc: "The CA bundle (PEM, one or more certificates) client certificates must chain to. Relative to the config file's directory; read again on every reload."),
        .field("mode", \.mode, .enumeration(Mode.self),
               doc: "`required`: a client without a certificate fails the handshake. `optional`: it is served, with empty `{tls.client_subject}`, and routes with `require_client_cert: true` answer it 403."),
    ]}

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) { self.node = node }
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

    /// A host name with no wildcard: what a client sends as SNI.
    static var plainName: ConfigType<Positioned<String>> {
        ConfigType.string(minLength: 1).map({ s, node, d in
            let n = s.lowercased()
            guard SNINames.isValid(n), !n.hasPrefix("*.") else {
                d.error(node, "'\(s)' is not a host name to send as SNI",
                        hint: "a DNS name such as `api.internal.example`; no wildcard, IP address or port")
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

/// `pools[].tls`: the pool speaks TLS (HTTPS) to its endpoints.
struct UpstreamTLSConfig: ConfigObject {
    var enabled = true
    var ca: Positioned<String>?
    var sni: Positioned<String>?
    var cert: Positioned<String>?
    var key: Positioned<String>?
    var minVersion = "1.2"
    var insecureSkipVerify = false
    var node: ConfigNode?

    static let schemaName = "UpstreamTLS"
    static let doc = "TLS to the pool's endpoints (HTTPS upstreams), through swift-nio-ssl's BoringSSL: TLS 1.2 or 1.3, the same cipher suites as listeners, no ALPN (HTTP/1.1). The upstream's certificate is verified by default: its chain must reach a certificate of `ca` (the system's trust store without it), and it must carry the server name (`sni`, else the endpoint's host name: a DNS name of its subjectAltName) or the IP address Prox connected to (swift-nio-ssl accepts either; an endpoint given by IP address without `sni` sends no SNI and is checked by its IP address). A connection is verified once, when it is made; pooled connections are then reused like cleartext ones. A failed handshake answers 502 `upstream_tls_failed` (the error log says why); one that does not finish within the pool's `timeouts.connect` answers 504 `upstream_connect_timeout`. `tls: true` (or `tls: {}`) is TLS with every default."
    static let shorthand: String? = "enabled"
    static let acceptsNull = true

    static var fields: [ConfigField<Self>] {[
        .field("enabled", \.enabled, .bool, doc: "TLS on (`tls: true` is short for it); `false` keeps the pool cleartext."),
        .field("ca", \.ca, ConfigType.string(minLength: 1).positioned, default: "the system's trust store",
               doc: "The CA bundle (PEM, one or more certificates) the upstreams' certificates must chain to, instead of the system's trust store (`/etc/ssl/certs/ca-certificates.crt` on Debian: the `ca-certificates` package). Relative to the config file's directory; read again on every reload."),
        .field("sni", \.sni, CertificateConfig.plainName, default: "the endpoint's host name",
               doc: "The server name sent in the ClientHello (SNI) and checked against the upstream's certificate, for every endpoint. Without it, each endpoint's host name; an endpoint given by IP address then sends no SNI and its certificate must hold that IP address."),
        .field("cert", \.cert, ConfigType.string(minLength: 1).positioned,
               doc: "A client certificate (PEM, leaf first, then intermediates) offered to upstreams that ask for one (mTLS). Needs `key`."),
        .field("key", \.key, ConfigType.string(minLength: 1).positioned,
               doc: "The client certificate's private key (PEM, unencrypted; RSA or EC). Compiling checks that it matches `cert`."),
        .field("min_version", \.minVersion, ConfigType.oneOf(["1.2", "1.3"]),
               doc: "Lowest TLS version offered: `\"1.2\"` or `\"1.3\"` (quoted). An upstream that has none in common fails the handshake (502 `upstream_tls_failed`)."),
        .field("insecure_skip_verify", \.insecureSkipVerify, .bool,
               doc: "Accept any certificate the upstream presents, unverified: the connection is encrypted but anyone on the path can impersonate the upstream. For tests only; `prox validate` warns about it. `ca` and `sni`'s check are then unused (`sni` is still sent)."),
    ]}

    static var rules: [ConfigRule] { [.requires("cert", ["key"]), .requires("key", ["cert"])] }

    mutating func validate(_ node: ConfigNode, _ decoder: inout ConfigDecoder) {
        self.node = node
        if insecureSkipVerify, enabled, let n = node["insecure_skip_verify"] {
            decoder.warning(n, "insecure_skip_verify: the upstream's certificate is not verified, so anyone on the network path can impersonate it",
                            hint: "give the CA that signed it as `ca` instead")
            if let c = node["ca"] {
                decoder.warning(c, "`ca` is not used: insecure_skip_verify turns verification off")
            }
        }
    }
}
