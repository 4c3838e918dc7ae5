# PyTorch peer of bench/train_step_bench.ts: the same U-Net architectures written in plain
# PyTorch (diffusers' UNet2DConditionModel structure, our own code), timed the same way.
#   /usr/bin/python3 bench/peers/torch_train_step.py --cases small16,small1,sd1,sdfwd2 \
#     [--steps 5] [--warmup 1] [--device cuda]
# Prints one JSON line per case: {"name", "params", "medianMs", "steps"}. Exit code 3 when torch
# is missing (Debian: apt-get install python3-torch).
import argparse
import json
import math
import os
import statistics
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    print("torch is not installed; on Debian: apt-get install python3-torch", file=sys.stderr)
    sys.exit(3)


def timestep_features(t, dim):
    # diffusers get_timestep_embedding, flip_sin_to_cos=True, shift 0
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb, groups, eps=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, heads, ctx_dim=None):
        super().__init__()
        ctx_dim = ctx_dim or dim
        self.heads = heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(ctx_dim, dim, bias=False)
        self.to_v = nn.Linear(ctx_dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        B, T, C = x.shape
        h = self.heads

        def split(t):
            return t.reshape(B, -1, h, C // h).transpose(1, 2)

        q, k, v = split(self.to_q(x)), split(self.to_k(ctx)), split(self.to_v(ctx))
        w = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(C // h), dim=-1)
        return self.to_out((w @ v).transpose(1, 2).reshape(B, T, C))


class TransformerBlock(nn.Module):
    def __init__(self, dim, heads, ctx_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.attn2 = Attention(dim, heads, ctx_dim)
        self.norm3 = nn.LayerNorm(dim)
        self.ff_proj = nn.Linear(dim, 8 * dim)  # GEGLU: 2 x (4 dim)
        self.ff_out = nn.Linear(4 * dim, dim)

    def forward(self, x, ctx):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), ctx) + x
        a, g = self.ff_proj(self.norm3(x)).chunk(2, dim=-1)
        return self.ff_out(a * F.gelu(g)) + x


class Transformer2D(nn.Module):
    def __init__(self, ch, heads, ctx_dim, groups):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch, 1e-6)
        self.proj_in = nn.Conv2d(ch, ch, 1)
        self.block = TransformerBlock(ch, heads, ctx_dim)
        self.proj_out = nn.Conv2d(ch, ch, 1)

    def forward(self, x, ctx):
        B, C, H, W = x.shape
        h = self.proj_in(self.norm(x)).permute(0, 2, 3, 1).reshape(B, H * W, C)
        h = self.block(h, ctx).reshape(B, H, W, C).permute(0, 3, 1, 2)
        return self.proj_out(h) + x


class UNet(nn.Module):
    def __init__(self, ch, layers, down_attn, up_attn, ctx_dim, heads, groups):
        super().__init__()
        c0 = ch[0]
        temb = 4 * c0
        self.c0 = c0
        self.conv_in = nn.Conv2d(4, c0, 3, padding=1)
        self.time_1 = nn.Linear(c0, temb)
        self.time_2 = nn.Linear(temb, temb)
        n = len(ch)
        self.down = nn.ModuleList()
        prev = c0
        for i in range(n):
            blk = nn.Module()
            blk.resnets = nn.ModuleList(
                [Resnet(prev if j == 0 else ch[i], ch[i], temb, groups) for j in range(layers)])
            blk.attns = nn.ModuleList(
                [Transformer2D(ch[i], heads, ctx_dim, groups) for _ in range(layers)]
            ) if down_attn[i] else None
            blk.down = nn.Conv2d(ch[i], ch[i], 3, stride=2, padding=1) if i < n - 1 else None
            self.down.append(blk)
            prev = ch[i]
        self.mid_res1 = Resnet(ch[-1], ch[-1], temb, groups)
        self.mid_attn = Transformer2D(ch[-1], heads, ctx_dim, groups)
        self.mid_res2 = Resnet(ch[-1], ch[-1], temb, groups)
        rev = ch[::-1]
        self.up = nn.ModuleList()
        out = rev[0]
        for i in range(n):
            prev_out, out = out, rev[i]
            inp = rev[min(i + 1, n - 1)]
            blk = nn.Module()
            res = []
            for j in range(layers + 1):
                skip = inp if j == layers else out
                rin = prev_out if j == 0 else out
                res.append(Resnet(rin + skip, out, temb, groups))
            blk.resnets = nn.ModuleList(res)
            blk.attns = nn.ModuleList(
                [Transformer2D(out, heads, ctx_dim, groups) for _ in range(layers + 1)]
            ) if up_attn[i] else None
            blk.up = nn.Conv2d(out, out, 3, padding=1) if i < n - 1 else None
            self.up.append(blk)
        self.norm_out = nn.GroupNorm(groups, c0, 1e-5)
        self.conv_out = nn.Conv2d(c0, 4, 3, padding=1)

    def forward(self, x, t, ctx):
        temb = self.time_2(F.silu(self.time_1(timestep_features(t, self.c0))))
        h = self.conv_in(x)
        skips = [h]
        for blk in self.down:
            for j, r in enumerate(blk.resnets):
                h = r(h, temb)
                if blk.attns is not None:
                    h = blk.attns[j](h, ctx)
                skips.append(h)
            if blk.down is not None:
                h = blk.down(h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, temb), ctx), temb)
        for blk in self.up:
            for j, r in enumerate(blk.resnets):
                h = r(torch.cat([h, skips.pop()], dim=1), temb)
                if blk.attns is not None:
                    h = blk.attns[j](h, ctx)
            if blk.up is not None:
                h = blk.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def small():
    return UNet([64, 128, 128], 1, [True, True, False], [False, True, True], 64, 4, 16)


def sd15():
    return UNet([320, 640, 1280, 1280], 2, [True, True, True, False], [False, True, True, True],
                768, 8, 32)


def count(m):
    return sum(p.numel() for p in m.parameters())


def case(name):
    torch.manual_seed(0)
    if name.startswith("small"):
        b = int(name[5:])
        m = small()
        opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
        x, ctx, noise = torch.randn(b, 4, 16, 16), torch.randn(b, 12, 64), torch.randn(b, 4, 16, 16)
        t = torch.tensor([(i * 997) % 1000 for i in range(b)])

        def step():
            F.mse_loss(m(x, t, ctx), noise).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return m, step
    m = sd15().requires_grad_(False)
    if name == "sd1":
        x = torch.randn(1, 4, 16, 16, requires_grad=True)
        ctx, noise = torch.randn(1, 77, 768), torch.randn(1, 4, 16, 16)
        t = torch.tensor([500])

        def step():
            F.mse_loss(m(x, t, ctx), noise).backward()
            x.grad = None
        return m, step
    x, ctx, t = torch.randn(2, 4, 16, 16), torch.randn(2, 77, 768), torch.tensor([500, 500])

    def fwd():
        with torch.no_grad():
            m(x, t, ctx)
    return m, fwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="small16,small1")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    if a.device != "cpu":
        torch.set_default_device(a.device)
    sync = torch.cuda.synchronize if a.device.startswith("cuda") else (lambda: None)
    for name in a.cases.split(","):
        m, step = case(name)
        for _ in range(a.warmup):
            step()
        sync()
        times = []
        for _ in range(a.steps):
            t0 = time.perf_counter()
            step()
            sync()
            times.append((time.perf_counter() - t0) * 1000)
        print(json.dumps({"name": name, "params": count(m), "medianMs": statistics.median(times),
                          "steps": times}), flush=True)
        print(f"torch {torch.__version__} ({a.device}, {torch.get_num_threads()} threads) {name}: "
              f"{count(m)} params, median {statistics.median(times):.0f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
