@testable import ProxEngine
import ProxCore
import Testing

/// The request's `host`: lowercased a word at a time, and kept across a connection's requests
/// (`H1HostCache`). Both against the byte-at-a-time normalization ProxCore's `normalizeHost`
/// specifies.
@Suite struct HTTP1HostTests {
    /// The reference: lowercased byte by byte, the port and a final dot dropped.
    static func reference(_ raw: [UInt8]) -> String {
        var end = raw.count
        if raw.first == UInt8(ascii: "[") {
            if let close = raw.firstIndex(of: UInt8(ascii: "]")) { end = close + 1 }
        } else if let colon = raw.lastIndex(of: UInt8(ascii: ":")) {
            end = colon
        }
        if end > 0 && raw[end - 1] == UInt8(ascii: ".") { end -= 1 }
        return String(decoding: raw[0..<end].map(asciiLower), as: UTF8.self)
    }

    static func randomHost(_ rng: inout SplitMix64) -> [UInt8] {
        let alphabet = Array("abcxyzABCXYZ019-.@[`{:]".utf8)
        let n = Int(rng.next() % 40) + 1
        var h = (0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] }
        switch rng.next() % 4 {
        case 0: h += Array(":8080".utf8)
        case 1: h = Array("[::1]".utf8) + (rng.next() % 2 == 0 ? Array(":443".utf8) : [])
        default: break
        }
        return h
    }

    @Test func lowercasesAsTheReferenceDoes() {
        var rng = SplitMix64(seed: 11)
        for _ in 0..<5000 {
            let raw = Self.randomHost(&rng)
            // Placed at an odd offset with bytes around it: only `from..<to` counts.
            let buffer = Array("Zz".utf8) + raw + Array("Q:".utf8)
            let got = buffer.withUnsafeBytes { h1NormalizedHost($0, from: 2, to: 2 + raw.count) }
            #expect(got == Self.reference(raw), "\(String(decoding: raw, as: UTF8.self))")
        }
        // Every byte value at every position of a word, beside the letters' borders.
        for b in UInt8(0)...UInt8(255) {
            for pos in 0..<8 {
                var bytes = Array("AZaz@[`{".utf8)
                bytes[pos] = b
                let w = bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
                let out = withUnsafeBytes(of: h1LowercaseASCII(w)) { Array($0) }
                #expect(out == bytes.map(asciiLower), "\(b) at \(pos)")
            }
        }
    }

    @Test func theCacheAnswersAsTheNormalizationDoes() {
        var rng = SplitMix64(seed: 12)
        var cache = H1HostCache()
        var recent: [[UInt8]] = []
        for _ in 0..<5000 {
            // Mostly repeats (a keep-alive connection), sometimes a new host or one a byte apart.
            var raw: [UInt8]
            let pick = rng.next() % 4
            if recent.isEmpty || pick == 3 {
                raw = Self.randomHost(&rng)
            } else {
                raw = recent[Int(rng.next() % UInt64(recent.count))]
                if pick == 2 { raw[Int(rng.next() % UInt64(raw.count))] ^= 0x20 }
            }
            recent.append(raw)
            if recent.count > 4 { recent.removeFirst() }
            let buffer = Array("xy".utf8) + raw
            let got = buffer.withUnsafeBytes { cache.normalized($0, from: 2, to: 2 + raw.count) }
            #expect(got == Self.reference(raw), "\(String(decoding: raw, as: UTF8.self))")
        }
    }
}
