@testable import ProxEngine
import ProxCore
import Testing

/// `h1EqualsLower` compares words, not bytes: checked against the byte-by-byte comparison for
/// every literal the parsers use, over the bytes they call it on (no control byte but HTAB).
@Suite("h1EqualsLower")
struct HTTP1EqualsLowerTests {
    static let literals: [StaticString] = [
        "te", "host", "http", "https", "gzip", "close", "expect", "x-gzip", "chunked", "deflate", "trailer", "upgrade",
        "compress", "websocket", "keep-alive", "connection", "x-compress", "100-continue", "content-length",
        "proxy-connection", "transfer-encoding",
    ]

    /// Bytes a parser may hand over: HTAB, SP through `~`, and obs-text.
    static let allowed: [UInt8] = [0x09] + Array(0x20...0x7E) + [0x80, 0xC3, 0xFF]

    static func naive(_ bytes: [UInt8], _ lit: StaticString) -> Bool {
        guard bytes.count == lit.utf8CodeUnitCount else { return false }
        let l = UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount)
        return zip(bytes, l).allSatisfy { asciiLower($0) == $1 }
    }

    static func fast(_ bytes: [UInt8], _ lit: StaticString, offset: Int) -> Bool {
        // At an offset inside a larger buffer, as in a head: the word loads must stay in range.
        let padded = Array(repeating: UInt8(ascii: "x"), count: offset) + bytes
        return padded.withUnsafeBytes { h1EqualsLower($0, offset, bytes.count, lit) }
    }

    @Test func agreesWithTheByteByByteComparison() {
        var rng = SplitMix64(seed: 9)
        for lit in Self.literals {
            let base = Array(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
            var cases: [[UInt8]] = [base, base.map { $0 >= 0x61 && $0 <= 0x7A ? $0 - 0x20 : $0 }, Array(base.dropLast()), base + [0x61]]
            for _ in 0..<400 {
                var b = base
                // Random case, then up to two bytes replaced by any allowed byte.
                for i in b.indices where b[i] >= 0x61 && b[i] <= 0x7A && rng.next() & 1 == 0 { b[i] -= 0x20 }
                for _ in 0..<Int(rng.next() % 3) {
                    b[Int(rng.next() % UInt64(b.count))] = Self.allowed[Int(rng.next() % UInt64(Self.allowed.count))]
                }
                cases.append(b)
            }
            for (n, b) in cases.enumerated() {
                let want = Self.naive(b, lit)
                #expect(Self.fast(b, lit, offset: n % 5) == want, "\(lit) vs \(b)")
            }
        }
    }

    @Test func everyByteAtEveryPositionIsSeen() {
        // A difference in any single byte is found, whichever word it falls in.
        for lit in Self.literals {
            let base = Array(UnsafeBufferPointer(start: lit.utf8Start, count: lit.utf8CodeUnitCount))
            for i in base.indices {
                for c in Self.allowed {
                    var b = base
                    b[i] = c
                    #expect(Self.fast(b, lit, offset: 3) == Self.naive(b, lit), "\(lit) byte \(i) = \(c)")
                }
            }
        }
    }
}
