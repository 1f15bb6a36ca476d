import NIOCore
import ProxCore
import Testing

/// `appendBytes` and `writeInPlace` write at the writer index of buffers of every shape: fresh,
/// read from, sliced out of a larger one (storage not starting at 0), and shared (copy on write).
@Suite struct ByteBufferAppendTests {
    static func shapes() -> [(String, ByteBuffer)] {
        var fresh = ByteBuffer()
        fresh.writeString("")
        var read = ByteBuffer(string: "xxhead")
        read.moveReaderIndex(forwardBy: 2)
        var big = ByteBuffer(string: "0123456789abcdef")
        big.moveReaderIndex(forwardBy: 4)
        let slice = big.readSlice(length: 6)!  // "456789", its storage starting at 4
        let shared = ByteBuffer(string: "shared")
        // Room to spare and shared: written into a copy, not into the other holder's storage.
        var roomy = ByteBufferAllocator().buffer(capacity: 64)
        roomy.writeString("roomy")
        return [("empty", ByteBuffer()), ("fresh", fresh), ("read from", read), ("slice", slice), ("shared", shared),
                ("shared with room", roomy)]
    }

    @Test func appendsAtTheWriterIndex() {
        for (name, original) in Self.shapes() {
            for n in [0, 1, 7, 64, 5000] {
                let extra = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
                var ours = original
                var theirs = original
                extra.withUnsafeBytes { ours.appendBytes($0) }
                theirs.writeBytes(extra)
                #expect(ours == theirs, "\(name), \(n) bytes")
                #expect(Array(ours.readableBytesView) == Array(original.readableBytesView) + extra, "\(name), \(n) bytes")
                // The original (shared with the copy) is untouched.
                #expect(original == Self.shapes().first { $0.0 == name }!.1, "\(name)")

                var fromBuffer = original
                fromBuffer.appendBytes(of: ByteBuffer(bytes: extra))
                #expect(fromBuffer == theirs, "\(name), \(n) bytes, from a buffer")
            }
        }
    }

    @Test func writesInPlace() {
        for (name, original) in Self.shapes() {
            var ours = original
            let written = ours.writeInPlace(minimumWritableBytes: 300) { room in
                #expect(room.count >= 300)
                for i in 0..<300 { room[i] = UInt8(truncatingIfNeeded: i) }
                return 250
            }
            #expect(written == 250)
            var theirs = original
            theirs.writeBytes((0..<250).map { UInt8(truncatingIfNeeded: $0) })
            #expect(ours == theirs, "\(name)")
        }
    }

    @Test func shortAndLongArraysEmptyKeepingStorage() {
        for n in [0, 1, 2, 8, 9, 40] {
            var a = Array(0..<n)
            a.reserveCapacity(64)
            let capacity = a.capacity
            a.removeAllKeepingStorage()
            #expect(a.isEmpty)
            #expect(a.capacity == capacity, "\(n)")
            // Shared storage: the other holder keeps its elements.
            var b = Array(0..<n).map { "s\($0)" }
            let keep = b
            b.removeAllKeepingStorage()
            #expect(b.isEmpty)
            #expect(keep == (0..<n).map { "s\($0)" })
        }
    }
}
