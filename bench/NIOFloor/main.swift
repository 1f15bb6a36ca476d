// prox-niofloor: the floor of any SwiftNIO reverse proxy on this machine.
//
// Each client connection gets its own upstream connection on the same event loop, and bytes are
// forwarded verbatim both ways: no HTTP parsing, no routing, no headers, no pool. Whatever CPU
// this costs per request is SwiftNIO's (channel reads, writes, flushes, read re-arms) plus the
// kernel's, and no proxy built on SwiftNIO channels can cost less. bench/floor.sh runs it through
// ../shared/bench/compare.py beside nginx and HAProxy; docs/BENCHMARKS.md records the result.
//
//   prox-niofloor --listen 127.0.0.1:8080 --upstream 127.0.0.1:9000 --threads 1
import NIOCore
import NIOPosix

final class Forwarder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    var peer: Channel?
    var pending: [ByteBuffer] = []

    init(peer: Channel? = nil) { self.peer = peer }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        if let peer { peer.writeAndFlush(bytes, promise: nil) } else { pending.append(bytes) }
    }

    func connected(_ peer: Channel) {
        self.peer = peer
        for b in pending { peer.write(b, promise: nil) }
        pending = []
        peer.flush()
    }

    func channelInactive(context: ChannelHandlerContext) {
        peer?.close(promise: nil)
        peer = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }
}

func arg(_ name: String, _ fallback: String) -> String {
    let a = CommandLine.arguments
    if let i = a.firstIndex(of: name), i + 1 < a.count { return a[i + 1] }
    return fallback
}

func hostPort(_ s: String) -> (String, Int) {
    let parts = s.split(separator: ":")
    return (String(parts[0]), Int(parts[1]) ?? 0)
}

let (listenHost, listenPort) = hostPort(arg("--listen", "127.0.0.1:8080"))
let (upHost, upPort) = hostPort(arg("--upstream", "127.0.0.1:9000"))
let threads = Int(arg("--threads", "1")) ?? 1
let group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
let upstream = try SocketAddress(ipAddress: upHost, port: upPort)

let server = try ServerBootstrap(group: group)
    .serverChannelOption(ChannelOptions.backlog, value: 4096)
    .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
    .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
    .childChannelInitializer { client in
        // Handlers are added on their channel's loop (sync operations), and the client's stays
        // bound to that loop, which the upstream channel shares: none needs to be Sendable.
        let fromClient = NIOLoopBound(Forwarder(), eventLoop: client.eventLoop)
        do { try client.pipeline.syncOperations.addHandler(fromClient.value) } catch {
            return client.eventLoop.makeFailedFuture(error)
        }
        return ClientBootstrap(group: client.eventLoop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { up in
                up.eventLoop.makeCompletedFuture { try up.pipeline.syncOperations.addHandler(Forwarder(peer: client)) }
            }
            .connect(to: upstream)
            .map { up in fromClient.value.connected(up) }
    }
    .bind(host: listenHost, port: listenPort)
    .wait()
print("prox-niofloor on \(listenHost):\(listenPort) -> \(upHost):\(upPort), \(threads) loop(s)")
try server.closeFuture.wait()
