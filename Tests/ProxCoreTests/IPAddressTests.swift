import Testing
@testable import ProxCore

/// IPv4 text parsing (one pass over the bytes) against the definition it replaced: four
/// dot-separated parts of one to three ASCII digits, each at most 255, without a leading zero.
@Suite struct IPAddressTests {
    static func reference(_ s: String) -> UInt32? {
        let parts = s.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy({ $0.isASCII && $0.isNumber }), let n = UInt32(p), n <= 255 else { return nil }
            if p.count > 1 && p.first == "0" { return nil }
            v = v << 8 | n
        }
        return v
    }

    @Test func examples() {
        let cases = ["127.0.0.1", "0.0.0.0", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.04",
                     "1..2.3", ".1.2.3", "1.2.3.", "", "1.2.3.4 ", " 1.2.3.4", "1.2.3.0", "10.0.0.00", "1.2.3.1000",
                     "1.2.3.٣", "1.2.3.4\u{301}", "1.2.3.a", "999.0.0.1", "1.2.3.-4", "1.2.3.+4"]
        for s in cases {
            #expect(IPAddress.parseV4(s) == Self.reference(s), "\(s.debugDescription)")
        }
        #expect(IPAddress("127.0.0.1") == .v4(0x7f00_0001))
        #expect(IPAddress("::ffff:10.0.0.1") == .v4(0x0a00_0001))
    }

    @Test func agreesWithTheDefinition() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("0123456789..01255")
        for _ in 0..<20_000 {
            let n = Int.random(in: 0...16, using: &rng)
            let s = String((0..<n).map { _ in alphabet.randomElement(using: &rng)! })
            #expect(IPAddress.parseV4(s) == Self.reference(s), "\(s.debugDescription)")
        }
    }
}
