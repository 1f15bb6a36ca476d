import Foundation
#if canImport(Glibc)
import Glibc
#endif
import NIOSSL
import ProxCore

/// A certificate chain and its private key, read from PEM files and checked (both parse, the key
/// matches the leaf certificate): what a TLS listener serves for some SNI names. Loaded when a
/// config compiles (`prox validate`, start, reload), never on an event loop.
public struct TLSCertificate: Sendable {
    /// Leaf first, then any intermediates the file holds.
    public let chain: [NIOSSLCertificate]
    public let key: NIOSSLPrivateKey
    /// DNS names of the leaf's subjectAltName, lowercased; its common name when it has none
    /// and the common name looks like a host name.
    public let namesInCertificate: [String]
    /// Validity, seconds since 1970.
    public let notBefore: Int64
    public let notAfter: Int64
    /// The files as the config names them (for messages, dry-run and logs).
    public let certFile: String
    public let keyFile: String
}

/// The certificates of a CA bundle file, that peers' certificates must chain to.
public struct CABundle: Sendable {
    public let certificates: [NIOSSLCertificate]
    /// The file as the config names it.
    public let file: String
}

/// Why a certificate could not be loaded, and which of the two files is to blame.
public struct TLSLoadProblem: Error, Sendable, CustomStringConvertible {
    public enum Culprit: Sendable { case certificate, key, pair }
    public var culprit: Culprit
    public var message: String
    public var hint: String?
    public var description: String { message }
}

public enum TLSCertificateLoader {
    /// Reads `certPath` and `keyPath` (as they are to be opened) and checks them; `certFile` and
    /// `keyFile` are the names messages use.
    public static func load(certPath: String, keyPath: String, certFile: String, keyFile: String) -> Result<TLSCertificate, TLSLoadProblem> {
        let certBytes: [UInt8]
        switch read(certPath) {
        case .success(let b): certBytes = b
        case .failure(let f):
            return .failure(TLSLoadProblem(culprit: .certificate, message: "cannot read the certificate file \(certFile): \(f.why)", hint: relativeHint(certFile)))
        }
        let keyBytes: [UInt8]
        switch read(keyPath) {
        case .success(let b): keyBytes = b
        case .failure(let f):
            return .failure(TLSLoadProblem(culprit: .key, message: "cannot read the key file \(keyFile): \(f.why)", hint: relativeHint(keyFile)))
        }
        let chain = (try? NIOSSLCertificate.fromPEMBytes(certBytes)) ?? []
        guard let leaf = chain.first else {
            let looksLikeKey = String(decoding: certBytes.prefix(4096), as: UTF8.self).contains("PRIVATE KEY-----")
            return .failure(TLSLoadProblem(culprit: .certificate, message: "\(certFile) holds no PEM certificate",
                                           hint: looksLikeKey ? "it holds a private key: are `cert` and `key` swapped?" : "expected -----BEGIN CERTIFICATE----- blocks, leaf first"))
        }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: keyBytes, format: .pem)
        } catch {
            let text = String(decoding: keyBytes.prefix(4096), as: UTF8.self)
            let hint = text.contains("ENCRYPTED") ? "encrypted keys are not supported: decrypt it (openssl pkey -in KEY -out KEY.plain)"
                : text.contains("BEGIN CERTIFICATE") ? "it holds a certificate: are `cert` and `key` swapped?"
                : "expected a PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)"
            return .failure(TLSLoadProblem(culprit: .key, message: "\(keyFile) holds no usable private key", hint: hint))
        }
        // BoringSSL compares the key with the leaf's public key when both go into a context.
        var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        config.minimumTLSVersion = .tlsv12
        do {
            _ = try NIOSSLContext(configuration: config)
        } catch {
            return .failure(TLSLoadProblem(culprit: .pair, message: "the key \(keyFile) does not match the certificate \(certFile)",
                                           hint: "the key must be the one the certificate was issued for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"))
        }
        return .success(TLSCertificate(chain: chain, key: key, namesInCertificate: names(of: leaf),
                                       notBefore: Int64(leaf.notValidBefore), notAfter: Int64(leaf.notValidAfter),
                                       certFile: certFile, keyFile: keyFile))
    }

    /// A CA bundle: one or more PEM certificates, for verifying peers.
    public static func loadCABundle(path: String, file: String) -> Result<CABundle, TLSLoadProblem> {
        let bytes: [UInt8]
        switch read(path) {
        case .success(let b): bytes = b
        case .failure(let f):
            return .failure(TLSLoadProblem(culprit: .certificate, message: "cannot read the CA bundle \(file): \(f.why)", hint: relativeHint(file)))
        }
        let certs = (try? NIOSSLCertificate.fromPEMBytes(bytes)) ?? []
        guard !certs.isEmpty else {
            return .failure(TLSLoadProblem(culprit: .certificate, message: "\(file) holds no PEM certificate",
                                           hint: "a CA bundle is one or more -----BEGIN CERTIFICATE----- blocks"))
        }
        return .success(CABundle(certificates: certs, file: file))
    }

    static func relativeHint(_ file: String) -> String? {
        file.hasPrefix("/") ? nil : "relative paths are read from the config file's directory"
    }

    /// Largest certificate or key file read: a chain of a few certificates is a few KiB.
    static let maxFileBytes = 1 << 20

    /// Reads a regular file of at most `maxFileBytes` (never a device or a FIFO, which could
    /// block or never end).
    struct ReadFailure: Error { var why: String }

    static func read(_ path: String) -> Result<[UInt8], ReadFailure> {
        var st = stat()
        guard stat(path, &st) == 0 else { return .failure(ReadFailure(why: errno == ENOENT || errno == ENOTDIR ? "no such file" : "permission denied")) }
        switch st.st_mode & S_IFMT {
        case S_IFREG: break
        case S_IFDIR: return .failure(ReadFailure(why: "it is a directory"))
        default: return .failure(ReadFailure(why: "not a regular file"))
        }
        guard Int(st.st_size) <= maxFileBytes else { return .failure(ReadFailure(why: "larger than 1 MiB")) }
        guard let data = FileManager.default.contents(atPath: path) else { return .failure(ReadFailure(why: "permission denied")) }
        guard data.count <= maxFileBytes else { return .failure(ReadFailure(why: "larger than 1 MiB")) }
        return .success([UInt8](data))
    }

    /// The SNI names a certificate claims: its SAN DNS names, else a host-like common name.
    static func names(of cert: NIOSSLCertificate) -> [String] {
        var out: [String] = []
        for san in cert._subjectAlternativeNames() where san.nameType == .dnsName {
            let n = String(decoding: Array(san.contents), as: UTF8.self).lowercased()
            if SNINames.isValid(n), !out.contains(n) { out.append(n) }
        }
        if out.isEmpty, let cn = cert.subjectName.last(where: { $0.type == .commonName })?.value.lowercased(), SNINames.isValid(cn) {
            out.append(cn)
        }
        return out
    }
}

/// SNI names: `host.example.com`, or a wildcard `*.example.com` standing for exactly one label.
public enum SNINames {
    /// A lowercase DNS name (letters, digits, `-`, labels of 1 to 63 bytes, at least two labels),
    /// optionally starting with `*.`.
    public static func isValid(_ name: String) -> Bool {
        var rest = Substring(name)
        if rest.hasPrefix("*.") { rest = rest.dropFirst(2) }
        let labels = rest.split(separator: ".", omittingEmptySubsequences: false)
        guard name.utf8.count <= 253, labels.count >= 2 else { return false }
        for l in labels {
            guard !l.isEmpty, l.utf8.count <= 63, l.first != "-", l.last != "-" else { return false }
            guard l.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d }) else { return false }
        }
        return true
    }

    /// The name a ClientHello asked for, as the table stores names: ASCII lowercase, without a
    /// trailing dot.
    @inlinable
    public static func normalize(_ name: String) -> String {
        var n = name.lowercased()
        if n.hasSuffix(".") { n.removeLast() }
        return n
    }
}
