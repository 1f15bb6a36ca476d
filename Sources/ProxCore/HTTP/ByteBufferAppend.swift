import NIOCore

extension ByteBuffer {
    /// Appends `bytes` with one copy. SwiftNIO's `writeBytes` and `writeBuffer` slice the storage
    /// with a generic `dropFirst` that is not inlined (about 70 instructions a call, three calls a
    /// proxied request, callgrind); this asks for room and copies into it.
    @inlinable
    package mutating func appendBytes(_ bytes: UnsafeRawBufferPointer) {
        let n = bytes.count
        guard n > 0, let source = bytes.baseAddress else { return }
        reserveCapacity(minimumWritableBytes: n)
        // The whole storage, at the writer index: `withUnsafeMutableWritableBytes` slices with
        // that same `dropFirst`.
        let at = writerIndex
        withVeryUnsafeMutableBytes { ($0.baseAddress! + at).copyMemory(from: source, byteCount: n) }
        moveWriterIndex(forwardBy: n)
    }

    /// Appends the readable bytes of `other` (which is left as it was).
    @inlinable
    package mutating func appendBytes(of other: ByteBuffer) {
        other.withUnsafeReadableBytes { appendBytes($0) }
    }
}

extension ByteBuffer {
    /// `writeWithUnsafeMutableBytes(minimumWritableBytes:_:)` without SwiftNIO's generic
    /// `dropFirst` (see `appendBytes`): `body` gets at least `minimumWritableBytes` of room at
    /// the writer index and returns how many it wrote.
    @inlinable
    @discardableResult
    package mutating func writeInPlace(minimumWritableBytes: Int, _ body: (UnsafeMutableRawBufferPointer) -> Int) -> Int {
        reserveCapacity(minimumWritableBytes: minimumWritableBytes)
        let at = writerIndex
        let written = withVeryUnsafeMutableBytes { all in
            body(UnsafeMutableRawBufferPointer(start: all.baseAddress! + at, count: all.count - at))
        }
        moveWriterIndex(forwardBy: written)
        return written
    }
}
