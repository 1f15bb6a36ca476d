import NIOCore

/// The I/O a connection's HTTP logic needs from its engine: the seam between the engines
/// (docs/ARCHITECTURE.md, "An io_uring engine"). `ClientConnectionHandler` and
/// `UpstreamConnection` keep their framing, state machine and chain work; only these calls reach
/// the socket. On SwiftNIO the handler's `ChannelHandlerContext` is the I/O; on the io_uring
/// engine a `URingSocket` is.
protocol ConnectionIO: AnyObject {
    /// The loop the connection lives on (futures of its requests resolve here).
    var eventLoop: any EventLoop { get }
    /// Queues bytes; nothing is sent before `flush`.
    func send(_ buffer: ByteBuffer)
    func flush()
    /// `send` then `flush`, in one call.
    func sendAndFlush(_ buffer: ByteBuffer)
    /// Asks for one more read (a client connection's reads are requested one at a time, so a
    /// paused connection leaves bytes in the kernel and the peer feels the pressure).
    func read()
    /// Turns reading on or off for good (an upstream connection under a slow client).
    func setReading(_ on: Bool)
    /// False while more is queued than the peer has taken (the writer should hold back).
    var isWritable: Bool { get }
    /// Closes at once; queued bytes are dropped.
    func close()
    /// Closes once what is queued has been sent.
    func closeAfterSending()
}

extension ChannelHandlerContext: ConnectionIO {
    @inline(__always)
    func send(_ buffer: ByteBuffer) { write(NIOAny(buffer), promise: nil) }

    @inline(__always)
    func sendAndFlush(_ buffer: ByteBuffer) { writeAndFlush(NIOAny(buffer), promise: nil) }

    func setReading(_ on: Bool) {
        channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    var isWritable: Bool { channel.isWritable }

    func close() { close(promise: nil) }

    func closeAfterSending() {
        writeAndFlush(NIOAny(channel.allocator.buffer(capacity: 0))).whenComplete { _ in self.close(promise: nil) }
    }
}
