import ProxRegex

// The value types config fields use: strings, numbers, durations, sizes, addresses, CIDR
// blocks, header names, methods, regexes and templates.

extension ConfigType where Value == String {
    /// Any string.
    public static var string: ConfigType<String> { string(minLength: 0) }

    /// A string of at least `minLength` characters.
    public static func string(minLength: Int) -> ConfigType<String> {
        ConfigType(
            docName: "string",
            schema: { _ in
                var s: [(String, JSONValue)] = [("type", .string("string"))]
                if minLength > 0 { s.append(("minLength", .int(Int64(minLength)))) }
                return .object(s)
            },
            decode: { node, d in decodeString(node, minLength: minLength, &d) },
            render: { .string($0) })
    }

    /// What `string(minLength:)` decodes, for the types built on it to call without building
    /// that type (and its closures) for every value.
    static func decodeString(_ node: ConfigNode, minLength: Int, _ d: inout ConfigDecoder) -> String? {
        guard let s = node.string else {
            let hint = node.scalar != nil && !node.isNull ? "quote it: \"\(node.scalar!)\"" : nil
            typeMismatch("a string", node, &d, hint: hint)
            return nil
        }
        // Fewer than `minLength` characters, counting no further (`count` walks them all).
        if s.index(s.startIndex, offsetBy: minLength, limitedBy: s.endIndex) == nil {
            d.error(node, minLength == 1 ? "must not be empty" : "must be at least \(minLength) characters long")
            return nil
        }
        return s
    }

    /// One of a fixed set of strings.
    public static func oneOf(_ values: [String]) -> ConfigType<String> {
        ConfigType(
            docName: values.map { "`\($0)`" }.joined(separator: " \\| "),
            schema: { _ in .object([("type", .string("string")), ("enum", .array(values.map { .string($0) }))]) },
            decode: { node, d in
                guard let s = ConfigType<String>.decodeString(node, minLength: 0, &d) else { return nil }
                guard values.contains(s) else {
                    let hint = suggestion(for: s, in: values).map { "did you mean '\($0)'?" }
                    d.error(node, "'\(s)' is not one of \(values.joined(separator: ", "))", hint: hint)
                    return nil
                }
                return s
            },
            render: { .string($0) })
    }

    /// A name other parts of the config refer to: letters, digits, `_`, `-`, `.`; starts with
    /// a letter or digit.
    public static var identifier: ConfigType<String> {
        ConfigType(
            docName: "id",
            schema: { _ in .object([("type", .string("string")), ("pattern", .string("^[A-Za-z0-9][A-Za-z0-9_.-]*$")),
                                    ("maxLength", .int(128))]) },
            decode: { node, d in
                guard let s = ConfigType<String>.decodeString(node, minLength: 0, &d) else { return nil }
                guard isIdentifier(s) else {
                    d.error(node, "'\(s)' is not a valid id", hint: "ids use letters, digits, '_', '-' and '.', start with a letter or digit, and are at most 128 characters long")
                    return nil
                }
                return s
            },
            render: { .string($0) })
    }
}

/// Whether `s` is a valid config id.
public func isIdentifier(_ s: String) -> Bool {
    let u = Array(s.utf8)
    guard !u.isEmpty, u.count <= 128 else { return false }
    func alnum(_ b: UInt8) -> Bool {
        (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)
    }
    guard alnum(u[0]) else { return false }
    return u.allSatisfy { alnum($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".") }
}

extension ConfigType where Value == Bool {
    public static var bool: ConfigType<Bool> {
        ConfigType(
            docName: "boolean",
            schema: { _ in .object([("type", .string("boolean"))]) },
            decode: { node, d in
                if case .scalar(let s, .boolean) = node.kind { return s.lowercased() == "true" }
                var hint: String? = nil
                if let s = node.string, ["yes", "no", "on", "off", "y", "n"].contains(s.lowercased()) {
                    hint = "write true or false"
                }
                typeMismatch("true or false", node, &d, hint: hint)
                return nil
            },
            render: { .bool($0) })
    }

    /// Only `true`: for keys whose presence is the setting (`present: true`).
    public static var constTrue: ConfigType<Bool> {
        ConfigType(
            docName: "`true`",
            schema: { _ in .object([("const", .bool(true))]) },
            decode: { node, d in
                guard let b = ConfigType<Bool>.bool.decodeNode(node, &d) else { return nil }
                if !b { d.error(node, "can only be true", hint: "leave the key out instead"); return nil }
                return true
            },
            render: { .bool($0) })
    }
}

extension ConfigType where Value == Int {
    /// An integer in `min...max`.
    public static func int(min: Int? = nil, max: Int? = nil) -> ConfigType<Int> {
        ConfigType(
            docName: "integer" + rangeDoc(min.map(String.init), max.map(String.init)),
            schema: { _ in
                var s: [(String, JSONValue)] = [("type", .string("integer"))]
                if let m = min { s.append(("minimum", .int(Int64(m)))) }
                if let m = max { s.append(("maximum", .int(Int64(m)))) }
                return .object(s)
            },
            decode: { node, d in
                guard case .scalar(let text, .integer) = node.kind, let v = Int(text) else {
                    var hint: String? = nil
                    if let s = node.string, Int(s) != nil { hint = "write it without quotes: \(s)" }
                    typeMismatch("an integer", node, &d, hint: hint)
                    return nil
                }
                if let m = min, v < m { d.error(node, outOfRange("\(v)", min.map(String.init), max.map(String.init))); return nil }
                if let m = max, v > m { d.error(node, outOfRange("\(v)", min.map(String.init), max.map(String.init))); return nil }
                return v
            },
            render: { .int(Int64($0)) })
    }

    /// One of a fixed set of integers (status codes).
    public static func oneOf(_ values: [Int]) -> ConfigType<Int> {
        ConfigType(
            docName: values.map(String.init).joined(separator: " \\| "),
            schema: { _ in .object([("type", .string("integer")), ("enum", .array(values.map { .int(Int64($0)) }))]) },
            decode: { node, d in
                guard let v = ConfigType<Int>.int().decodeNode(node, &d) else { return nil }
                guard values.contains(v) else {
                    d.error(node, "\(v) is not one of \(values.map(String.init).joined(separator: ", "))")
                    return nil
                }
                return v
            },
            render: { .int(Int64($0)) })
    }
}

func rangeDoc(_ min: String?, _ max: String?) -> String {
    switch (min, max) {
    case (let a?, let b?): return " (\(a) to \(b))"
    case (let a?, nil): return " (at least \(a))"
    case (nil, let b?): return " (at most \(b))"
    default: return ""
    }
}

func outOfRange(_ v: String, _ min: String?, _ max: String?) -> String {
    switch (min, max) {
    case (let a?, let b?): return "\(v) is out of range: must be between \(a) and \(b)"
    case (let a?, nil): return "\(v) is out of range: must be at least \(a)"
    case (nil, let b?): return "\(v) is out of range: must be at most \(b)"
    default: return "\(v) is out of range"
    }
}

extension ConfigType where Value: RawRepresentable & CaseIterable, Value.RawValue == String {
    /// One of the enum's raw values.
    public static func enumeration(_ type: Value.Type) -> ConfigType<Value> {
        let names = Value.allCases.map(\.rawValue)
        return ConfigType<String>.oneOf(names).map({ s, _, _ in Value(rawValue: s) }, render: { .string($0.rawValue) })
    }
}

// MARK: - Durations and sizes

/// Durations: a number and a unit, `ms`, `s`, `m` or `h`, or several (`1m30s`).
public enum DurationText {
    public static let pattern = "^([0-9]+(ms|s|m|h))+$"

    /// Milliseconds, or nil when `text` is not a duration.
    public static func parse(_ text: String) -> Int64? {
        let u = Array(text.utf8)
        guard !u.isEmpty else { return nil }
        var i = 0
        var total: Int64 = 0
        while i < u.count {
            var n: Int64 = 0
            let start = i
            while i < u.count, u[i] >= 0x30, u[i] <= 0x39 {
                let (m, o1) = n.multipliedReportingOverflow(by: 10)
                let (a, o2) = m.addingReportingOverflow(Int64(u[i] - 0x30))
                if o1 || o2 { return nil }
                n = a
                i += 1
            }
            guard i > start, i < u.count else { return nil }
            let mult: Int64
            if u[i] == UInt8(ascii: "m"), i + 1 < u.count, u[i + 1] == UInt8(ascii: "s") { mult = 1; i += 2 }
            else if u[i] == UInt8(ascii: "s") { mult = 1000; i += 1 }
            else if u[i] == UInt8(ascii: "m") { mult = 60_000; i += 1 }
            else if u[i] == UInt8(ascii: "h") { mult = 3_600_000; i += 1 }
            else { return nil }
            let (p, o1) = n.multipliedReportingOverflow(by: mult)
            let (t, o2) = total.addingReportingOverflow(p)
            if o1 || o2 { return nil }
            total = t
        }
        return total
    }

    /// The shortest spelling: `30s`, `1m`, `1m30s`, `500ms`.
    public static func format(_ ms: Int64) -> String {
        if ms == 0 { return "0s" }
        var rest = ms, out = ""
        for (unit, size) in [("h", Int64(3_600_000)), ("m", 60_000), ("s", 1000)] where rest >= size {
            out += "\(rest / size)\(unit)"
            rest %= size
        }
        if rest > 0 { out += "\(rest)ms" }
        return out
    }
}

/// Sizes: bytes as an integer, or a number and a unit: `B`, `KB`, `MB`, `GB` (powers of
/// 1000), `KiB`, `MiB`, `GiB` (powers of 1024).
public enum SizeText {
    public static let pattern = "^[0-9]+(B|KB|KiB|MB|MiB|GB|GiB)$"

    public static func parse(_ text: String) -> Int64? {
        var digits = Substring(text)
        var unit = ""
        while let l = digits.last, !(l.isASCII && l.isNumber) { unit = String(l) + unit; digits = digits.dropLast() }
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let n = Int64(digits) else { return nil }
        let mult: Int64
        switch unit {
        case "B": mult = 1
        case "KB": mult = 1000
        case "MB": mult = 1_000_000
        case "GB": mult = 1_000_000_000
        case "KiB": mult = 1024
        case "MiB": mult = 1024 * 1024
        case "GiB": mult = 1024 * 1024 * 1024
        default: return nil
        }
        let (v, o) = n.multipliedReportingOverflow(by: mult)
        return o ? nil : v
    }

    /// The shortest binary spelling: `32KiB`, `1MiB`, `1000B`.
    public static func format(_ bytes: Int64) -> String {
        for (unit, size) in [("GiB", Int64(1 << 30)), ("MiB", 1 << 20), ("KiB", 1 << 10)] where bytes >= size && bytes % size == 0 {
            return "\(bytes / size)\(unit)"
        }
        return "\(bytes)B"
    }
}

extension ConfigType where Value == Int64 {
    /// A duration, decoded to milliseconds: `500ms`, `5s`, `1m`, `1h`, `1m30s`.
    public static func duration(min: Int64? = nil, max: Int64? = nil) -> ConfigType<Int64> {
        ConfigType(
            docName: "duration" + rangeDoc(min.map(DurationText.format), max.map(DurationText.format)),
            schema: { _ in .object([("type", .string("string")), ("pattern", .string(DurationText.pattern))]) },
            decode: { node, d in
                let hint = "write a number and a unit: 500ms, 5s, 1m, 1h (or several: 1m30s)"
                guard case .scalar(let text, let t) = node.kind, t == .string || t == .integer else {
                    typeMismatch("a duration", node, &d, hint: hint)
                    return nil
                }
                guard t == .string, let v = DurationText.parse(text) else {
                    d.error(node, t == .integer ? "\(text) has no unit" : "'\(text)' is not a duration",
                            hint: t == .integer ? "write \(text)ms or \(text)s" : hint)
                    return nil
                }
                if let m = min, v < m { d.error(node, outOfRange(text, DurationText.format(m), max.map(DurationText.format))); return nil }
                if let m = max, v > m { d.error(node, outOfRange(text, min.map(DurationText.format), DurationText.format(m))); return nil }
                return v
            },
            render: { .string(DurationText.format($0)) })
    }

    /// A size in bytes: an integer, or `64KiB`, `1MiB`, `10MB`.
    public static func size(min: Int64? = nil, max: Int64? = nil) -> ConfigType<Int64> {
        ConfigType(
            docName: "size" + rangeDoc(min.map(SizeText.format), max.map(SizeText.format)),
            schema: { _ in
                var s: [(String, JSONValue)] = [("type", .array([.string("integer"), .string("string")])),
                                                ("pattern", .string(SizeText.pattern))]
                if let m = min { s.append(("minimum", .int(m))) }
                if let m = max { s.append(("maximum", .int(m))) }
                return .object(s)
            },
            decode: { node, d in
                let v: Int64
                switch node.kind {
                case .scalar(let text, .integer):
                    guard let n = Int64(text) else { d.error(node, "\(text) is too large"); return nil }
                    v = n
                case .scalar(let text, .string):
                    guard let n = SizeText.parse(text) else {
                        d.error(node, "'\(text)' is not a size",
                                hint: "write bytes as an integer, or a number and a unit: 512B, 64KiB, 1MiB, 1GiB, 10MB")
                        return nil
                    }
                    v = n
                default:
                    typeMismatch("a size", node, &d, hint: "write 64KiB, 1MiB or a number of bytes")
                    return nil
                }
                let text = node.scalar ?? ""
                if let m = min, v < m { d.error(node, outOfRange(text, SizeText.format(m), max.map(SizeText.format))); return nil }
                if let m = max, v > m { d.error(node, outOfRange(text, min.map(SizeText.format), SizeText.format(m))); return nil }
                return v
            },
            render: { .string(SizeText.format($0)) })
    }
}

extension ConfigType where Value == Int {
    /// A size that fits an `Int`, as `size`.
    public static func sizeInt(min: Int64? = nil, max: Int64? = nil) -> ConfigType<Int> {
        ConfigType<Int64>.size(min: min, max: max).map({ v, _, _ in Int(v) }, render: { .string(SizeText.format(Int64($0))) })
    }
}

// MARK: - Addresses

/// A `host:port` as written: host is an IP literal (IPv6 in brackets), a name, or empty
/// (`:8080`, every address).
public struct HostPort: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }
    public var ip: IPAddress? { IPAddress(host) }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// Parses `host:port`, `[v6]:port`, or `:port` (host empty). Returns an error message.
    public static func parse(_ text: String, allowNames: Bool, allowEmptyHost: Bool, allowPortZero: Bool) -> Result<HostPort, AddressError> {
        var host: Substring, portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else { return .failure(AddressError("unclosed '[' in '\(text)'")) }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { return .failure(AddressError("'\(text)' has no port", hint: "write [\(host)]:8080")) }
            portText = rest.dropFirst()
            guard case .v6? = IPAddress(host) else { return .failure(AddressError("'\(host)' is not an IPv6 address")) }
        } else {
            let colons = text.filter { $0 == ":" }.count
            if colons > 1 {
                return .failure(AddressError("'\(text)' is ambiguous", hint: "write an IPv6 address in brackets: [::1]:8080"))
            }
            guard let colon = text.lastIndex(of: ":") else {
                return .failure(AddressError("'\(text)' has no port", hint: "write host:port, such as \(text.isEmpty ? "127.0.0.1" : text):8080"))
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.isEmpty {
                if !allowEmptyHost { return .failure(AddressError("'\(text)' has no host", hint: "write host:port, such as 127.0.0.1\(text)")) }
            } else if host.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }) {
                guard IPAddress(host) != nil else { return .failure(AddressError("'\(host)' is not a valid IPv4 address")) }
            } else if !allowNames && host.lowercased() != "localhost" {
                return .failure(AddressError("'\(host)' is not an IP address", hint: "listen on an IP address (127.0.0.1, 0.0.0.0, [::]) or localhost"))
            } else if !isHostName(host) {
                return .failure(AddressError("'\(host)' is not a valid host name"))
            }
        }
        guard !portText.isEmpty, portText.allSatisfy({ $0.isASCII && $0.isNumber }), let port = Int(portText), port <= 65535 else {
            return .failure(AddressError("'\(portText)' is not a port number (0 to 65535)"))
        }
        if port == 0 && !allowPortZero { return .failure(AddressError("port 0 is not allowed here")) }
        return .success(HostPort(host: String(host).lowercased(), port: port))
    }
}

public struct AddressError: Error, Sendable {
    public var message: String
    public var hint: String?
    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
}

/// RFC 1123 host name: dot-separated labels of letters, digits and '-'.
@inlinable  // specialised where it is called: generic, it costs several thousand instructions per name
public func isHostName<S: StringProtocol>(_ s: S) -> Bool {
    // The bytes in place: walking `utf8` cost four times as much.
    s.utf8.withContiguousStorageIfAvailable { isHostName(utf8: $0) } ?? isHostName(utf8: s.utf8)
}

/// `isHostName` of a name's UTF-8.
@inlinable
public func isHostName<C: Collection<UInt8>>(utf8: C) -> Bool {
    // One pass over the bytes (it runs for every route's host when a config compiles).
    guard !utf8.isEmpty, utf8.count <= 253 else { return false }
    var length = 0
    var last: UInt8 = 0
    for b in utf8 {
        if b == UInt8(ascii: ".") {
            guard length > 0, last != UInt8(ascii: "-") else { return false }
            length = 0
        } else {
            guard (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b == UInt8(ascii: "-"),
                  length > 0 || b != UInt8(ascii: "-") else { return false }
            length += 1
            guard length <= 63 else { return false }
        }
        last = b
    }
    return length > 0 && last != UInt8(ascii: "-")
}

extension ConfigType where Value == HostPort {
    /// `host:port`. Listeners: IP literals or `localhost`, or `:port` for every address.
    /// Endpoints: also host names.
    public static func address(allowNames: Bool, allowEmptyHost: Bool, allowPortZero: Bool) -> ConfigType<HostPort> {
        ConfigType(
            docName: "address",
            schema: { _ in .object([("type", .string("string")), ("pattern", .string(allowEmptyHost ? "^.*:[0-9]+$" : "^.+:[0-9]+$"))]) },
            decode: { node, d in
                guard let text = ConfigType<String>.decodeString(node, minLength: 0, &d) else { return nil }
                switch HostPort.parse(text, allowNames: allowNames, allowEmptyHost: allowEmptyHost, allowPortZero: allowPortZero) {
                case .success(let hp): return hp
                case .failure(let e): d.error(node, "invalid address: " + e.message, hint: e.hint); return nil
                }
            },
            render: { .string($0.description) })
    }
}

// MARK: - Networks, names, regexes

extension ConfigType where Value == CIDR {
    /// An address block, `10.0.0.0/8`, `2001:db8::/32`, or one address.
    public static var cidr: ConfigType<CIDR> {
        ConfigType(
            docName: "CIDR",
            schema: { _ in .object([("type", .string("string")), ("pattern", .string("^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$"))]) },
            decode: { node, d in
                guard let text = ConfigType<String>.decodeString(node, minLength: 0, &d) else { return nil }
                guard let c = CIDR(text) else {
                    d.error(node, "'\(text)' is not an IP address or CIDR block",
                            hint: "write an address (192.168.1.7, ::1) or a block (10.0.0.0/8, 2001:db8::/32)")
                    return nil
                }
                if !text.contains(":"), let slash = text.firstIndex(of: "/"), let ip = IPAddress(text[..<slash]),
                   CIDR.mask(ip, c.prefixLength) != ip {
                    d.warning(node, "'\(text)' has bits set after the prefix; it means \(c)")
                }
                return c
            },
            render: { .string($0.description) })
    }
}

extension ConfigType where Value == HeaderName {
    /// A header name (RFC 9110 token).
    public static var headerName: ConfigType<HeaderName> {
        ConfigType<String>.string(minLength: 1).map(docName: "header name", { s, node, d in
            guard s.utf8.allSatisfy(isTokenByte) else {
                d.error(node, "'\(s)' is not a valid header name", hint: "header names use letters, digits and !#$%&'*+-.^_`|~")
                return nil
            }
            return HeaderName(s)
        }, render: { .string($0.name) }).describing(schema: { _ in
            .object([("type", .string("string")), ("pattern", .string("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))])
        })
    }
}

/// Checks a header-name map key; for `ConfigType.map(key:)`.
public func checkHeaderNameKey(_ key: String, _ node: ConfigNode, _ d: inout ConfigDecoder) -> Bool {
    guard !key.isEmpty, key.utf8.allSatisfy(isTokenByte) else {
        d.error(node, "'\(key)' is not a valid header name", hint: "header names use letters, digits and !#$%&'*+-.^_`|~")
        return false
    }
    return true
}

public let headerNameKeySchema: JSONValue = .object([("pattern", .string("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"))])

extension ConfigType where Value == HTTPMethod {
    /// A request method, case-sensitive (`GET`, `POST`, ...).
    public static var httpMethod: ConfigType<HTTPMethod> {
        let common = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"]
        return ConfigType<String>.string(minLength: 1).map(docName: "method", { s, node, d in
            guard s.utf8.allSatisfy(isTokenByte) else { d.error(node, "'\(s)' is not a valid method"); return nil }
            if !common.contains(s), common.contains(s.uppercased()) {
                d.error(node, "methods are case-sensitive: '\(s)' never matches \(s.uppercased())", hint: "write \(s.uppercased())")
                return nil
            }
            return HTTPMethod(s)
        }, render: { .string($0.description) }).describing(schema: { _ in
            .object([("type", .string("string")), ("pattern", .string("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")),
                     ("examples", .array(common.map { .string($0) }))])
        })
    }
}

extension ConfigType where Value == Positioned<Regex> {
    /// A PCRE2 regex, compiled (and JIT-compiled) while decoding. A compile error points at the
    /// column of the offending character.
    ///
    /// - Parameters:
    ///   - caseless: compile case-insensitively.
    ///   - anchoredWhole: wrap as `^(?:pattern)\z`, so the whole subject must match.
    public static func regex(caseless: Bool = false, anchoredWhole: Bool = false) -> ConfigType<Positioned<Regex>> {
        ConfigType(
            docName: "regex",
            schema: { _ in .object([("type", .string("string")), ("format", .string("regex")), ("minLength", .int(1))]) },
            decode: { node, d in
                guard let text = ConfigType<String>.decodeString(node, minLength: 1, &d) else { return nil }
                let prefix = anchoredWhole ? "^(?:" : ""
                let full = anchoredWhole ? prefix + text + ")\\z" : text
                do throws(RegexError) {
                    return Positioned(try Regex(full, caseless: caseless, jit: d.jitRegexes), node: node)
                } catch {
                    let offset = min(max(0, error.offset - prefix.utf8.count), text.utf8.count)
                    d.error(at: node.mark(atOffset: offset), path: node.path,
                            "invalid regex: \(error.message) at offset \(offset)")
                    d.diagnostics[d.diagnostics.count - 1].caret = Diagnostic.Caret(pattern: text, offset: offset)
                    return nil
                }
            },
            render: { .string($0.value.pattern) })
    }
}

extension ConfigType where Value == Positioned<String> {
    /// A template (`{host}`, `{request_id}`, `{path.1}`, ...), kept as source with its position:
    /// it is compiled per route, because capture groups depend on the route's regexes.
    public static var template: ConfigType<Positioned<String>> {
        ConfigType<String>.string.positioned.describing(docName: "template")
    }
}
