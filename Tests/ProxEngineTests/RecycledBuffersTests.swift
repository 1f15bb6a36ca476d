import NIOCore
@testable import ProxEngine
import Testing

/// `RecycledBuffers`: a buffer comes back only when nobody else holds it, emptied, with its
/// memory; the ring stays within its count and size.
@Suite struct RecycledBuffersTests {
    static func buffer(_ capacity: Int, _ text: String = "") -> ByteBuffer {
        var b = ByteBufferAllocator().buffer(capacity: capacity)
        b.writeString(text)
        return b
    }

    static func address(_ b: ByteBuffer) -> UInt {
        b.withVeryUnsafeBytes { UInt(bitPattern: $0.baseAddress) }
    }

    @Test func emptyRingGivesNothing() {
        var r = RecycledBuffers(count: 4, maxCapacity: 4096)
        #expect(r.take() == nil)
    }

    /// Held by someone else (a send in flight): not taken. Let go: taken, emptied, same memory.
    @Test func takenOnlyOnceLetGo() {
        var r = RecycledBuffers(count: 4, maxCapacity: 4096)
        var inFlight: ByteBuffer? = Self.buffer(1024, "HTTP/1.1 200 OK\r\n")
        let memory = Self.address(inFlight!)
        r.give(inFlight!)
        #expect(r.take() == nil)
        inFlight = nil
        let b = r.take()
        #expect(b != nil)
        #expect(b?.readableBytes == 0)
        #expect(b.map(Self.address) == memory)
        #expect(r.take() == nil, "taken out of the ring")
    }

    /// A buffer taken is the only holder of its memory: writing to it makes no copy.
    @Test func takerWritesWithoutACopy() {
        var r = RecycledBuffers(count: 4, maxCapacity: 4096)
        r.give(Self.buffer(1024, "x"))
        var b = r.take()!
        let memory = Self.address(b)
        b.writeString("written")
        #expect(Self.address(b) == memory)
    }

    /// The oldest still held does not stop a later one that was let go (within four).
    @Test func looksPastHeldOnes() {
        var r = RecycledBuffers(count: 8, maxCapacity: 4096)
        let held = [Self.buffer(64, "a"), Self.buffer(64, "b")]
        for b in held { r.give(b) }
        var free: ByteBuffer? = Self.buffer(64, "c")
        let memory = Self.address(free!)
        r.give(free!)
        free = nil
        #expect(r.take().map(Self.address) == memory)
        #expect(r.take() == nil)
        _ = held
    }

    /// Beyond the newest and the four oldest, nothing is looked at: the take stays bounded.
    @Test func looksAtFourAtMost() {
        var r = RecycledBuffers(count: 8, maxCapacity: 4096)
        let held = (0..<4).map { Self.buffer(64, "\($0)") }
        for b in held { r.give(b) }
        r.give(Self.buffer(64, "free"))
        let newest = Self.buffer(64, "newest, held")
        r.give(newest)
        #expect(r.take() == nil)
        _ = (held, newest)
    }

    /// The newest given back is taken first when free (SwiftNIO: its send already completed).
    @Test func newestFirst() {
        var r = RecycledBuffers(count: 8, maxCapacity: 4096)
        r.give(Self.buffer(64, "older"))
        var newest: ByteBuffer? = Self.buffer(64, "newest")
        let memory = Self.address(newest!)
        r.give(newest!)
        newest = nil
        #expect(r.take().map(Self.address) == memory)
    }

    /// A full ring drops its oldest; buffers above `maxCapacity` or without memory are not kept.
    @Test func boundedInCountAndSize() {
        var r = RecycledBuffers(count: 2, maxCapacity: 4096)
        var first: ByteBuffer? = Self.buffer(64, "1")
        let firstMemory = Self.address(first!)
        r.give(first!)
        first = nil
        for i in 2...4 { r.give(Self.buffer(64, "\(i)")) }
        r.give(Self.buffer(8192, "big"))
        r.give(ByteBuffer())
        var taken: [UInt] = []
        while let b = r.take() { taken.append(Self.address(b)) }
        #expect(taken.count == 3, "the ring's two and the newest")
        #expect(!taken.contains(firstMemory), "the oldest was dropped")
    }
}
