import NIOCore
import ProxCore
import Testing

/// Added lines are kept serialized (`Name: value\r\n`); these pin what reading, removing and
/// writing them must still mean.
struct HeaderFieldsTests {
    func received(_ lines: [(String, String)]) -> HeaderFields {
        RequestHead.make(method: .get, target: "/", headers: lines).fields
    }

    @Test func addedLinesAreSerializedInOrderAndReadBack() {
        var f = received([("Host", "a.example"), ("Accept", "*/*")])
        f.add(.xForwardedFor, "203.0.113.9")
        f.add(HeaderName("X-Trace"), "t1")
        #expect(String(decoding: f.addedBytes, as: UTF8.self) == "X-Forwarded-For: 203.0.113.9\r\nX-Trace: t1\r\n")
        #expect(f.first(HeaderName("x-trace")) == "t1")
        #expect(f.addedHas(.xForwardedFor))
        #expect(!f.addedHas(.via))
        #expect(f.effective.map { "\($0.name)=\($0.value)" } == ["Host=a.example", "Accept=*/*", "X-Forwarded-For=203.0.113.9", "X-Trace=t1"])
    }

    @Test func crLfAndNulInAddedValuesBecomeSpaces() {
        var f = HeaderFields()
        f.add(HeaderName("X-Evil"), "a\r\nInjected: 1\u{0}z")
        #expect(String(decoding: f.addedBytes, as: UTF8.self) == "X-Evil: a  Injected: 1 z\r\n")
    }

    /// The value is checked eight bytes at a time: CR, LF and NUL become SP wherever they fall
    /// (within a word or in the tail), and every other byte, the ones just above them and
    /// non-ASCII included, is kept.
    @Test func crLfAndNulBecomeSpacesAtEveryPosition() {
        let fillers: [[UInt8]] = [[0x78], [0x0E, 0x0F, 0x1F, 0x20, 0x7F, 0x80, 0xFF], [0x01, 0x09, 0x0B, 0x0C, 0x78]]
        for filler in fillers {
            for length in 1...26 {
                for bad: UInt8 in [0x0D, 0x0A, 0x00] {
                    for at in 0..<length {
                        var value = (0..<length).map { filler[$0 % filler.count] }
                        value[at] = bad
                        var f = HeaderFields()
                        value.withUnsafeBytes { f.add(HeaderName("X-V"), bytes: $0) }
                        var want = Array("X-V: ".utf8) + value
                        want[5 + at] = 0x20
                        want += [0x0D, 0x0A]
                        #expect(f.addedBytes == want, "length \(length), \(bad) at \(at)")
                    }
                }
            }
        }
    }

    @Test func namesThatAreNotTokensAreDropped() {
        var f = HeaderFields()
        f.add(HeaderName("Bad Name"), "v")
        f.add(HeaderName(""), "v")
        #expect(f.addedBytes.isEmpty)
    }

    @Test func removeAndSetSeeReceivedAndAddedLines() {
        var f = received([("Via", "1.0 edge"), ("X-A", "1")])
        f.add(.via, "1.1 mid")
        f.add(HeaderName("X-A"), "2")
        #expect(f.all(.via) == ["1.0 edge", "1.1 mid"])
        f.remove(.via)
        #expect(f.all(.via).isEmpty)
        #expect(!f.addedHas(.via))
        #expect(f.all(HeaderName("x-a")) == ["1", "2"])
        f.set(HeaderName("X-A"), "3")
        #expect(f.all(HeaderName("X-A")) == ["3"])
        #expect(String(decoding: f.addedBytes, as: UTF8.self) == "X-A: 3\r\n")
    }

    /// Names without a known bit: `addedHas` walks the added lines only once such a name was
    /// added (`otherNameBit`), and a removal that rebuilds the lines recomputes the bit.
    @Test func addedHasForNamesWithoutAKnownBit() {
        let a = HeaderName("X-A"), b = HeaderName("x-b")
        var f = received([("X-A", "received")])
        #expect(!f.addedHas(a))
        f.add(.xRequestID, "id")
        #expect(!f.addedHas(a))
        #expect(f.addedKnown & HeaderFields.otherNameBit == 0)
        f.add(HeaderName("x-a"), "1")
        #expect(f.addedHas(a))
        #expect(!f.addedHas(b))
        f.add(HeaderName("X-B"), "2")
        f.remove(a)
        #expect(!f.addedHas(a))
        #expect(f.addedHas(b))
        #expect(f.first(a) == nil)
        f.remove(b)
        #expect(!f.addedHas(b))
        #expect(f.addedKnown & HeaderFields.otherNameBit == 0)
        #expect(f.addedHas(.xRequestID))
        f.set(a, "3")
        #expect(f.all(a) == ["3"])
    }

    @Test func addCopiesAReceivedValueAsBytes() {
        var f = received([("Host", "api.example.com:8080")])
        f.add(.xForwardedHost, valueOfSlot: f.firstSlot(.host)!)
        #expect(f.first(.xForwardedHost) == "api.example.com:8080")
    }

    @Test func knownBitConstantsAreTheNamesBits() {
        #expect(HeaderName.Bit.host == HeaderName.host.knownBit)
        #expect(HeaderName.Bit.xForwardedFor == HeaderName.xForwardedFor.knownBit)
        #expect(HeaderName.Bit.xForwardedProto == HeaderName.xForwardedProto.knownBit)
        #expect(HeaderName.Bit.xForwardedHost == HeaderName.xForwardedHost.knownBit)
        #expect(HeaderName.Bit.via == HeaderName.via.knownBit)
    }

    @Test func lentNamesAreTheNames() {
        #expect(HeaderName.Lent.host.takeUnretainedValue() === HeaderName.host)
        #expect(HeaderName.Lent.xForwardedFor.takeUnretainedValue() === HeaderName.xForwardedFor)
        #expect(HeaderName.Lent.xForwardedProto.takeUnretainedValue() === HeaderName.xForwardedProto)
        #expect(HeaderName.Lent.xForwardedHost.takeUnretainedValue() === HeaderName.xForwardedHost)
        #expect(HeaderName.Lent.via.takeUnretainedValue() === HeaderName.via)
        var f = received([("Host", "a.example")])
        f.add(HeaderName.Lent.via, "1.1 prox")
        f.add(HeaderName.Lent.xForwardedHost, valueOfSlot: f.firstSlot(HeaderName.Lent.host)!)
        #expect(String(decoding: f.addedBytes, as: UTF8.self) == "Via: 1.1 prox\r\nX-Forwarded-Host: a.example\r\n")
        #expect(f.addedKnown == HeaderName.Bit.via | HeaderName.Bit.xForwardedHost)
    }

    @Test func recycledAddedStorageShowsOnlyTheNewLines() {
        var f = received([("Host", "a.example")])
        f.add(HeaderName("X-Long-Name-Added-First"), String(repeating: "v", count: 300))
        f.add(HeaderName("X-B"), "2")
        var (slots, added) = f.takeStorage()
        slots.removeAll(keepingCapacity: true)
        #expect(added.count >= 300)
        // The next head gets the same memory, old bytes and all: only its own lines show.
        var g = HeaderFields(bytes: ByteBuffer(), slots: slots, addedStorage: added)
        #expect(g.addedByteCount == 0 && g.addedBytes.isEmpty && g.addedLines.isEmpty)
        g.add(HeaderName("X-C"), "3")
        #expect(String(decoding: g.addedBytes, as: UTF8.self) == "X-C: 3\r\n")
        #expect(g.withAddedBytes { String(decoding: $0, as: UTF8.self) } == "X-C: 3\r\n")
        #expect(g.addedLines.map { "\($0.name)=\($0.value)" } == ["X-C=3"])
        #expect(g.first(HeaderName("X-B")) == nil)
        g.remove(HeaderName("X-C"))
        #expect(g.addedByteCount == 0)
    }

    /// Clean bytes (a generated id's digits) and lines made once come out as `add` makes them.
    @Test func cleanBytesAndHeaderLinesAreWhatAddMakes() {
        var checked = received([("Host", "a.example"), ("X-Id", "old")])
        var clean = checked
        let values = ["0123456789abcdef0123456789abcdef", "", "x", "v1.2 (7)"]
        for (i, v) in values.enumerated() {
            checked.add(HeaderName("X-\(i)"), v)
            Array(v.utf8).withUnsafeBytes { clean.add(HeaderName("X-\(i)"), cleanBytes: $0) }
        }
        checked.set(HeaderName("X-Id"), "new")
        Array("new".utf8).withUnsafeBytes { clean.set(HeaderName("X-Id"), cleanBytes: $0) }
        #expect(clean.addedBytes == checked.addedBytes)
        #expect(clean.addedKnown == checked.addedKnown)
        #expect(clean.effective.map { "\($0.name)=\($0.value)" } == checked.effective.map { "\($0.name)=\($0.value)" })

        let lines = HeaderLines([(.xForwardedFor, "192.0.2.1"), (HeaderName("X-Other"), "a\r\nb")])
        var viaLines = received([("Host", "a.example")])
        var viaAdd = viaLines
        viaLines.add(lines)
        viaAdd.add(.xForwardedFor, "192.0.2.1")
        viaAdd.add(HeaderName("X-Other"), "a\r\nb")
        #expect(viaLines.addedBytes == viaAdd.addedBytes)
        #expect(viaLines.addedKnown == viaAdd.addedKnown)
        #expect(lines.bytes == viaAdd.addedBytes)
    }
}
