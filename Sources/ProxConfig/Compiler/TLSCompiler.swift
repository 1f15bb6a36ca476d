import Foundation
import ProxCore
import ProxTLS

/// A listener's `tls`: certificates read, parsed and checked (key matches, dates, SNI names
/// unique across the listener), then the server context made. Runs when a config compiles, so a
/// bad certificate fails `prox validate` and a reload like any other error.
extension Compilation {
    /// Where a path the config names is shown (relative to the config file's directory, as the
    /// file was named) and where it is read (`workingDirectory` standing in for the current one).
    func configRelative(_ path: String) -> (shown: String, read: String) {
        if path.hasPrefix("/") { return (path, path) }
        let dir = (file as NSString).deletingLastPathComponent
        let shown = dir.isEmpty ? path : dir + "/" + path
        if shown.hasPrefix("/") { return (shown, shown) }
        return (shown, workingDirectory.map { $0 + "/" + shown } ?? shown)
    }

    /// One certificate to load: its files, the node blamed for problems with each, and any
    /// names the config gives it.
    private struct Pending {
        var cert: (shown: String, read: String)
        var key: (shown: String, read: String)
        var certNode: ConfigNode
        var keyNode: ConfigNode
        var names: [Positioned<String>]?
        var isDefault: Bool
    }

    mutating func compileTLS(_ t: ListenerTLSConfig, listenerID: String) -> (any ListenerTLS)? {
        guard let tlsNode = t.node else { return nil }
        var pending: [Pending] = []
        for c in t.certificates {
            guard let cert = c.cert, let key = c.key else { continue }
            pending.append(Pending(cert: configRelative(cert.value), key: configRelative(key.value), certNode: cert.node,
                                   keyNode: key.node, names: c.names, isDefault: c.isDefault))
        }
        if let dir = t.certificatesDir {
            pending += scanCertificatesDir(dir)
        }
        // None: decoding or the directory scan has said why.
        guard !pending.isEmpty else { return nil }

        var loaded: [TLSCertificate] = []
        var names: [[String]] = []
        // pending[from[i]] is where loaded[i] came from.
        var from: [Int] = []
        var ok = true
        for (k, p) in pending.enumerated() {
            switch TLSCertificateLoader.load(certPath: p.cert.read, keyPath: p.key.read, certFile: p.cert.shown, keyFile: p.key.shown) {
            case .failure(let problem):
                error(problem.culprit == .certificate ? p.certNode : p.keyNode, problem.message, hint: problem.hint)
                ok = false
            case .success(let c):
                checkDates(c, at: p.certNode)
                loaded.append(c)
                names.append(p.names?.map(\.value) ?? c.namesInCertificate)
                from.append(k)
            }
        }
        // Names are still checked among the certificates that loaded: every problem at once.
        let defaultIndex = from.firstIndex(of: pending.firstIndex(where: \.isDefault) ?? 0) ?? -1
        // Each SNI name picks one certificate: a name served twice is ambiguous.
        var seen: [String: Int] = [:]
        for (i, ns) in names.enumerated() {
            for (j, n) in ns.enumerated() {
                if let first = seen[n] {
                    let node = pending[from[i]].names?[j].node ?? pending[from[i]].certNode
                    error(node, "SNI name '\(n)' is served by two certificates of listener '\(listenerID)': \(loaded[first].certFile) and \(loaded[i].certFile)",
                          hint: "each name must pick one certificate: remove it from one (`names:` overrides the names read from a certificate)")
                    ok = false
                } else {
                    seen[n] = i
                }
            }
            if ns.isEmpty && i != defaultIndex {
                warning(pending[from[i]].certNode, "\(loaded[i].certFile) has no DNS name to be selected by, and it is not the default: no handshake gets it",
                        hint: "give it `names:`, or make it the default")
            }
        }
        var clientAuth: (ca: CABundle, required: Bool)? = nil
        if let auth = t.clientAuth, let ca = auth.ca {
            let f = configRelative(ca.value)
            switch TLSCertificateLoader.loadCABundle(path: f.read, file: f.shown) {
            case .success(let bundle): clientAuth = (bundle, auth.mode == .required)
            case .failure(let p): error(ca.node, p.message, hint: p.hint); ok = false
            }
        }
        guard ok, defaultIndex >= 0 else { return nil }
        do {
            return try SSLListenerTLS(certificates: loaded, names: names, defaultIndex: defaultIndex, minVersion: t.minVersion,
                                      clientAuth: clientAuth, handshakeTimeout: t.handshakeTimeout)
        } catch {
            self.error(tlsNode, "the TLS context cannot be made: \(error)")
            return nil
        }
    }

    /// Certificate files of `certificates_dir`: `NAME.crt` or `NAME.pem` with `NAME.key`.
    private mutating func scanCertificatesDir(_ dir: Positioned<String>) -> [Pending] {
        let d = configRelative(dir.value)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: d.read, isDirectory: &isDir), isDir.boolValue,
              let entries = try? FileManager.default.contentsOfDirectory(atPath: d.read) else {
            error(dir.node, "cannot read the certificates directory \(d.shown): \(FileManager.default.fileExists(atPath: d.read) ? "not a directory" : "no such directory")",
                  hint: dir.value.hasPrefix("/") ? nil : "relative paths are read from the config file's directory")
            return []
        }
        let files = Set(entries)
        var out: [Pending] = []
        var usedKeys = Set<String>()
        for f in entries.sorted() where f.hasSuffix(".crt") || f.hasSuffix(".pem") {
            let base = String(f.dropLast(4))
            let keyName = base + ".key"
            guard files.contains(keyName) else {
                error(dir.node, "\(d.shown)/\(f) has no key: expected \(d.shown)/\(keyName)",
                      hint: "each certificate NAME.crt (or NAME.pem) needs its key NAME.key beside it")
                continue
            }
            usedKeys.insert(keyName)
            out.append(Pending(cert: (d.shown + "/" + f, d.read + "/" + f), key: (d.shown + "/" + keyName, d.read + "/" + keyName),
                               certNode: dir.node, keyNode: dir.node, names: nil, isDefault: false))
        }
        for f in entries.sorted() where f.hasSuffix(".key") && !usedKeys.contains(f) {
            warning(dir.node, "\(d.shown)/\(f) has no certificate beside it (NAME.crt or NAME.pem): it is not used")
        }
        if out.isEmpty && !diagnostics.contains(where: { $0.severity == .error && $0.path == dir.node.path }) {
            error(dir.node, "\(d.shown) holds no certificate (NAME.crt or NAME.pem with NAME.key)")
        }
        return out
    }

    /// An expired certificate (or one not valid yet) is an error: clients would refuse it.
    /// One that expires within 30 days is a warning.
    mutating func checkDates(_ c: TLSCertificate, at node: ConfigNode) {
        let now = Int64(Date().timeIntervalSince1970)
        let day: Int64 = 86_400
        if c.notAfter <= now {
            error(node, "certificate \(c.certFile) expired on \(Self.date(c.notAfter))", hint: "renew it; clients refuse an expired certificate")
        } else if c.notBefore > now {
            error(node, "certificate \(c.certFile) is not valid before \(Self.date(c.notBefore))", hint: "check the clock, or the certificate's dates")
        } else if c.notAfter - now < 30 * day {
            let days = (c.notAfter - now) / day
            warning(node, "certificate \(c.certFile) expires on \(Self.date(c.notAfter)), in \(days == 0 ? "less than a day" : days == 1 ? "1 day" : "\(days) days")",
                    hint: "renew it; a reload picks up the new files")
        }
    }

    static func date(_ seconds: Int64) -> String {
        let f = ISO8601DateFormatter()
        f.formatOptions = [.withInternetDateTime]
        return f.string(from: Date(timeIntervalSince1970: TimeInterval(seconds)))
    }
}

/// A pool's `tls`: the CA bundle and client certificate read and checked, the client context
/// made once here (never per connection), and each endpoint's server name decided.
extension Compilation {
    /// nil `tls` with `ok`: the pool is cleartext. `ok` false: an error was reported.
    mutating func compileUpstreamTLS(_ t: UpstreamTLSConfig, poolID: String) -> (tls: (any UpstreamTLS)?, ok: Bool) {
        guard t.enabled, let node = t.node else { return (nil, true) }
        var ok = true
        var roots: CABundle? = nil
        var caShown: String? = nil
        if let ca = t.ca, !t.insecureSkipVerify {
            let f = configRelative(ca.value)
            caShown = f.shown
            switch TLSCertificateLoader.loadCABundle(path: f.read, file: f.shown) {
            case .success(let certs): roots = certs
            case .failure(let p): error(ca.node, p.message, hint: p.hint); ok = false
            }
        } else if !t.insecureSkipVerify && SSLUpstreamTLS.systemTrustStore == nil {
            warning(node, "pool '\(poolID)' verifies its upstreams against the system's trust store, and this machine has none: every handshake will fail",
                    hint: "install the `ca-certificates` package, or give the CA bundle as `ca`")
        }
        var client: TLSCertificate? = nil
        if let cert = t.cert, let key = t.key {
            let c = configRelative(cert.value), k = configRelative(key.value)
            switch TLSCertificateLoader.load(certPath: c.read, keyPath: k.read, certFile: c.shown, keyFile: k.shown) {
            case .success(let loaded):
                client = loaded
                checkDates(loaded, at: cert.node)
            case .failure(let p):
                error(p.culprit == .certificate ? cert.node : key.node, p.message, hint: p.hint)
                ok = false
            }
        }
        guard ok else { return (nil, false) }
        let summary = UpstreamTLSSummary(ca: caShown, verify: !t.insecureSkipVerify, sni: t.sni?.value,
                                         clientCertificate: client?.certFile, minVersion: t.minVersion)
        do {
            return (try SSLUpstreamTLS(trustRoots: roots, verify: !t.insecureSkipVerify, client: client, minVersion: t.minVersion,
                                       summary: summary), true)
        } catch {
            self.error(node, "the upstream TLS context cannot be made: \(error)")
            return (nil, false)
        }
    }

    /// The name an endpoint's handshake sends and checks: the pool's `sni`, else the endpoint's
    /// host when it is a name (an IP address is never sent as SNI, RFC 6066 section 3).
    static func upstreamServerName(host: String, sni: String?) -> String? {
        if let sni { return sni }
        return IPAddress(host) == nil ? host.lowercased() : nil
    }
}
