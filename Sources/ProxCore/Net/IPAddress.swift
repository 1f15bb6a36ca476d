/// An IPv4 or IPv6 address as numbers, so CIDR checks are integer compares.
public enum IPAddress: Hashable, Sendable, CustomStringConvertible {
    case v4(UInt32)
    case v6(UInt64, UInt64)

    /// Parses dotted IPv4 or RFC 4291 IPv6 text (with `::`, and an embedded IPv4 tail).
    public init?(_ text: some StringProtocol) {
        let s = String(text)
        if s.utf8.contains(UInt8(ascii: ":")) {
            guard let v = IPAddress.parseV6(s) else { return nil }
            self = v
        } else {
            guard let v = IPAddress.parseV4(s) else { return nil }
            self = .v4(v)
        }
    }

    /// Four dot-separated decimal octets: one to three ASCII digits each, no leading zero
    /// (no octal ambiguity). One pass over the bytes (`prox diff` parses one per request run).
    static func parseV4(_ s: String) -> UInt32? {
        var v: UInt32 = 0, octet: UInt32 = 0
        var dots = 0, digits = 0, leadingZero = false
        for b in s.utf8 {
            if b == UInt8(ascii: ".") {
                guard digits > 0, dots < 3 else { return nil }
                v = v << 8 | octet
                dots += 1
                octet = 0
                digits = 0
            } else {
                guard b >= UInt8(ascii: "0") && b <= UInt8(ascii: "9") else { return nil }
                if digits == 0 { leadingZero = b == UInt8(ascii: "0") } else if leadingZero { return nil }
                digits += 1
                octet = octet * 10 + UInt32(b - UInt8(ascii: "0"))
                guard digits <= 3, octet <= 255 else { return nil }
            }
        }
        guard dots == 3, digits > 0 else { return nil }
        return v << 8 | octet
    }

    static func parseV6(_ s: String) -> IPAddress? {
        var groups: [UInt16] = []
        var tailGroups: [UInt16] = []
        let halves = s.components(separatedByDoubleColon: ())
        guard halves.count <= 2 else { return nil }
        func parseGroups(_ part: String, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            let items = part.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4Tail && i == items.count - 1 && item.contains(".") {
                    guard let v4 = parseV4(String(item)) else { return nil }
                    out.append(UInt16(v4 >> 16)); out.append(UInt16(v4 & 0xffff))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let g = UInt16(item, radix: 16) else { return nil }
                out.append(g)
            }
            return out
        }
        if halves.count == 1 {
            guard let g = parseGroups(halves[0], allowV4Tail: true), g.count == 8 else { return nil }
            groups = g
        } else {
            guard let a = parseGroups(halves[0], allowV4Tail: false), let b = parseGroups(halves[1], allowV4Tail: true),
                  a.count + b.count <= 7 else { return nil }
            groups = a
            tailGroups = b
            groups += Array(repeating: 0, count: 8 - a.count - b.count) + tailGroups
        }
        var hi: UInt64 = 0, lo: UInt64 = 0
        for i in 0..<4 { hi = hi << 16 | UInt64(groups[i]) }
        for i in 4..<8 { lo = lo << 16 | UInt64(groups[i]) }
        // IPv4-mapped IPv6 (::ffff:a.b.c.d) is treated as the IPv4 address.
        if hi == 0 && lo >> 32 == 0xffff { return .v4(UInt32(truncatingIfNeeded: lo)) }
        return .v6(hi, lo)
    }

    public var description: String {
        switch self {
        case .v4(let v):
            return "\(v >> 24).\(v >> 16 & 0xff).\(v >> 8 & 0xff).\(v & 0xff)"
        case .v6(let hi, let lo):
            var g: [UInt16] = []
            for i in stride(from: 48, through: 0, by: -16) { g.append(UInt16(truncatingIfNeeded: hi >> UInt64(i))) }
            for i in stride(from: 48, through: 0, by: -16) { g.append(UInt16(truncatingIfNeeded: lo >> UInt64(i))) }
            // Longest run of zeros becomes "::" (RFC 5952).
            var bestStart = -1, bestLen = 0, i = 0
            while i < 8 {
                if g[i] == 0 {
                    var j = i
                    while j < 8 && g[j] == 0 { j += 1 }
                    if j - i > bestLen && j - i > 1 { bestStart = i; bestLen = j - i }
                    i = j
                } else { i += 1 }
            }
            func hex(_ r: ArraySlice<UInt16>) -> String { r.map { String($0, radix: 16) }.joined(separator: ":") }
            if bestStart < 0 { return hex(g[...]) }
            return hex(g[0..<bestStart]) + "::" + hex(g[(bestStart + bestLen)...])
        }
    }
}

extension String {
    func components(separatedByDoubleColon: Void) -> [String] {
        var out: [String] = []
        let u = Array(self.utf8)
        var start = 0, i = 0
        while i + 1 < u.count {
            if u[i] == UInt8(ascii: ":") && u[i + 1] == UInt8(ascii: ":") {
                out.append(String(decoding: u[start..<i], as: UTF8.self))
                i += 2
                start = i
            } else { i += 1 }
        }
        out.append(String(decoding: u[start...], as: UTF8.self))
        return out
    }
}

/// An address block such as `10.0.0.0/8` or `2001:db8::/32`. A bare address is a /32 or /128.
public struct CIDR: Hashable, Sendable, CustomStringConvertible {
    public let address: IPAddress
    public let prefixLength: Int

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let a = IPAddress(parts[0]) else { return nil }
        let max: Int
        switch a { case .v4: max = 32; case .v6: max = 128 }
        var len = max
        if parts.count == 2 {
            guard let l = Int(parts[1]), l >= 0, l <= max else { return nil }
            len = l
        }
        // An IPv4-mapped prefix given in IPv6 form becomes the IPv4 prefix.
        if case .v4 = a, String(parts[0]).contains(":") { len = Swift.max(0, len - 96) }
        self.address = CIDR.mask(a, len)
        self.prefixLength = len
    }

    static func mask(_ a: IPAddress, _ len: Int) -> IPAddress {
        switch a {
        case .v4(let v):
            return .v4(len == 0 ? 0 : v & ~UInt32(0) << UInt32(32 - len))
        case .v6(let hi, let lo):
            if len <= 64 {
                return .v6(len == 0 ? 0 : hi & ~UInt64(0) << UInt64(64 - len), 0)
            }
            return .v6(hi, len == 128 ? lo : lo & ~UInt64(0) << UInt64(128 - len))
        }
    }

    public func contains(_ ip: IPAddress) -> Bool {
        switch (address, ip) {
        case (.v4, .v4), (.v6, .v6): return CIDR.mask(ip, prefixLength) == address
        default: return false
        }
    }

    public var description: String { "\(address)/\(prefixLength)" }
}
