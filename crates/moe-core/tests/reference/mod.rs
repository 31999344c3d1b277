//! A plain-Rust mixture-of-experts oracle: `Vec<f64>`, loops, and nothing from candle or
//! moe-core (the tests that use it read the weights out of a block as `Vec<f64>`; all arithmetic
//! here is written out below, from the block's specification rather than its code):
//!
//! - router: `logits = x · R`, R (D, E); no biases anywhere.
//! - `p = softmax(logits)` over all E experts.
//! - top-K by `p`, descending; equal probabilities go to the lower expert index.
//! - gates: the K selected probabilities renormalised to sum to 1 (`p_i / Σ_selected p_j`).
//! - expert e: `SwiGLU_e(x) = (silu(x · G_e) ⊙ (x · U_e)) · W_e`, G_e and U_e (D, F), W_e (F, D),
//!   `silu(a) = a · σ(a)`.
//! - output: `y = x + Σ_k gate_k · SwiGLU_{e_k}(x)` (the residual included).
//!
//! The backward pass of `loss = Σ y ⊙ w` is the chain rule by hand. The gradient of a
//! piecewise function is the gradient of the piece the routing selected; exact ties are broken
//! as above. With [`Gates::HostConstants`] (mixtral.rs's algorithm: the gates are read to the
//! host and come back as constants) nothing flows into the router: its gradient is `None`, and
//! `dx` has no routing term.
//!
//! The tests at the bottom check the analytic gradients against central finite differences of
//! this file's own forward pass, and the forward pass against numbers worked out by hand.

/// How the gates take part in the backward pass.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gates {
    /// Gates are a function of the router's weights and of x: both get the routing term.
    Differentiable,
    /// Gates are constants (computed on the host): no router gradient, no routing term in dx.
    HostConstants,
}

/// The block's weights in f64, row-major.
#[derive(Clone, Debug)]
pub struct Moe {
    pub d: usize,
    pub e: usize,
    pub k: usize,
    pub f: usize,
    /// (D, E): `router[i * e + j]`.
    pub router: Vec<f64>,
    /// Per expert (D, F).
    pub gate: Vec<Vec<f64>>,
    /// Per expert (D, F).
    pub up: Vec<Vec<f64>>,
    /// Per expert (F, D).
    pub down: Vec<Vec<f64>>,
}

/// Each token's routing.
#[derive(Clone, Debug, PartialEq)]
pub struct Routing {
    /// (T, E) router probabilities.
    pub probs: Vec<Vec<f64>>,
    /// (T, K) selected experts, in selection order.
    pub chosen: Vec<Vec<usize>>,
    /// (T, K) renormalised gates of `chosen`.
    pub gates: Vec<Vec<f64>>,
}

impl Routing {
    /// How many tokens each expert serves.
    pub fn load(&self, e: usize) -> Vec<usize> {
        let mut n = vec![0; e];
        for c in &self.chosen {
            for &i in c {
                n[i] += 1;
            }
        }
        n
    }

    /// The smallest gap `p_i - p_j` between a selected expert i and an unselected j whose
    /// probabilities differ: a rounding error smaller than this cannot change the selection
    /// (exactly equal probabilities are decided by index, and stay equal only if computed alike).
    pub fn margin(&self, t: usize) -> f64 {
        let p = &self.probs[t];
        let sel = &self.chosen[t];
        let mut m = f64::INFINITY;
        for &i in sel {
            for j in (0..p.len()).filter(|j| !sel.contains(j)) {
                if p[i] != p[j] {
                    m = m.min(p[i] - p[j]);
                }
            }
        }
        m
    }

    /// Whether token t's selection was decided by an exact tie across the top-K boundary.
    pub fn boundary_tie(&self, t: usize) -> bool {
        let p = &self.probs[t];
        let sel = &self.chosen[t];
        sel.iter().any(|&i| {
            (0..p.len())
                .filter(|j| !sel.contains(j))
                .any(|j| p[i] == p[j])
        })
    }

    /// Whether two of token t's selected experts have exactly equal probabilities.
    pub fn inner_tie(&self, t: usize) -> bool {
        let p = &self.probs[t];
        let sel = &self.chosen[t];
        sel.iter()
            .enumerate()
            .any(|(a, &i)| sel[a + 1..].iter().any(|&j| p[i] == p[j]))
    }
}

/// Every gradient of `loss = Σ y ⊙ w`.
#[derive(Clone, Debug)]
pub struct Grads {
    /// (T, D)
    pub x: Vec<f64>,
    /// (D, E); `None` when the gates are host constants.
    pub router: Option<Vec<f64>>,
    pub gate: Vec<Vec<f64>>,
    pub up: Vec<Vec<f64>>,
    pub down: Vec<Vec<f64>>,
}

fn sigmoid(a: f64) -> f64 {
    1.0 / (1.0 + (-a).exp())
}

fn silu(a: f64) -> f64 {
    a * sigmoid(a)
}

/// d silu / da = σ(a) (1 + a (1 − σ(a))).
fn silu_grad(a: f64) -> f64 {
    let s = sigmoid(a);
    s * (1.0 + a * (1.0 - s))
}

/// Indices of the k largest values, descending, ties to the lower index: k passes of a
/// first-strict-maximum scan (deliberately not a sort, unlike the code under test).
pub fn top_k(p: &[f64], k: usize) -> Vec<usize> {
    let mut taken = vec![false; p.len()];
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let mut best: Option<usize> = None;
        for j in 0..p.len() {
            if !taken[j] && best.is_none_or(|b| p[j] > p[b]) {
                best = Some(j);
            }
        }
        let b = best.expect("k <= e");
        taken[b] = true;
        out.push(b);
    }
    out
}

/// One expert on one token, with the intermediates the backward pass needs.
struct ExpertPass {
    /// x · G (F)
    a: Vec<f64>,
    /// x · U (F)
    b: Vec<f64>,
    /// silu(a) ⊙ b (F)
    m: Vec<f64>,
    /// m · W (D)
    out: Vec<f64>,
}

impl Moe {
    pub fn tokens(&self, x: &[f64]) -> usize {
        assert_eq!(x.len() % self.d, 0, "x is not (T, {})", self.d);
        x.len() / self.d
    }

    fn row<'a>(&self, v: &'a [f64], t: usize) -> &'a [f64] {
        &v[t * self.d..(t + 1) * self.d]
    }

    /// Softmax of one token's router logits.
    pub fn probs(&self, xt: &[f64]) -> Vec<f64> {
        let logits: Vec<f64> = (0..self.e)
            .map(|j| {
                (0..self.d)
                    .map(|i| xt[i] * self.router[i * self.e + j])
                    .sum()
            })
            .collect();
        let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let ex: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
        let sum: f64 = ex.iter().sum();
        ex.iter().map(|v| v / sum).collect()
    }

    fn renormalise(p: &[f64], chosen: &[usize]) -> Vec<f64> {
        let s: f64 = chosen.iter().map(|&i| p[i]).sum();
        chosen.iter().map(|&i| p[i] / s).collect()
    }

    /// The routing of every token of x (T, D).
    pub fn route(&self, x: &[f64]) -> Routing {
        let t = self.tokens(x);
        let probs: Vec<Vec<f64>> = (0..t).map(|i| self.probs(self.row(x, i))).collect();
        let chosen: Vec<Vec<usize>> = probs.iter().map(|p| top_k(p, self.k)).collect();
        let gates = probs
            .iter()
            .zip(&chosen)
            .map(|(p, c)| Self::renormalise(p, c))
            .collect();
        Routing {
            probs,
            chosen,
            gates,
        }
    }

    fn expert(&self, e: usize, xt: &[f64]) -> ExpertPass {
        let (d, f) = (self.d, self.f);
        let proj = |w: &[f64]| -> Vec<f64> {
            (0..f)
                .map(|j| (0..d).map(|i| xt[i] * w[i * f + j]).sum())
                .collect()
        };
        let a = proj(&self.gate[e]);
        let b = proj(&self.up[e]);
        let m: Vec<f64> = a.iter().zip(&b).map(|(a, b)| silu(*a) * b).collect();
        let out = (0..d)
            .map(|i| (0..f).map(|j| m[j] * self.down[e][j * d + i]).sum())
            .collect();
        ExpertPass { a, b, m, out }
    }

    /// `y = x + Σ_k gate_k · SwiGLU_{e_k}(x)`, (T, D).
    pub fn forward(&self, x: &[f64]) -> Vec<f64> {
        let r = self.route(x);
        self.forward_with(x, &r.chosen, None)
    }

    /// The forward pass with the selection fixed to `chosen` (the gates still renormalised from
    /// this x's probabilities), or with the gates fixed too: the smooth piece that a gradient
    /// describes, for finite differences.
    pub fn forward_with(
        &self,
        x: &[f64],
        chosen: &[Vec<usize>],
        fixed_gates: Option<&[Vec<f64>]>,
    ) -> Vec<f64> {
        let t = self.tokens(x);
        let mut y = x.to_vec();
        for tok in 0..t {
            let xt = self.row(x, tok);
            let gates = match fixed_gates {
                Some(g) => g[tok].clone(),
                None => Self::renormalise(&self.probs(xt), &chosen[tok]),
            };
            for (&e, g) in chosen[tok].iter().zip(gates) {
                let pass = self.expert(e, xt);
                for i in 0..self.d {
                    y[tok * self.d + i] += g * pass.out[i];
                }
            }
        }
        y
    }

    /// Every gradient of `loss = Σ y ⊙ w`, w (T, D), by hand.
    pub fn gradients(&self, x: &[f64], w: &[f64], gates: Gates) -> Grads {
        let (d, e_count, f) = (self.d, self.e, self.f);
        let t = self.tokens(x);
        assert_eq!(w.len(), x.len());
        let routing = self.route(x);
        // The residual: dy/dx = I.
        let mut dx = w.to_vec();
        let mut drouter = vec![0.0; d * e_count];
        let mut dgate = vec![vec![0.0; d * f]; e_count];
        let mut dup = vec![vec![0.0; d * f]; e_count];
        let mut ddown = vec![vec![0.0; f * d]; e_count];
        for tok in 0..t {
            let xt = self.row(x, tok);
            let wt = self.row(w, tok);
            let chosen = &routing.chosen[tok];
            let mut dg = vec![0.0; chosen.len()];
            for (slot, &e) in chosen.iter().enumerate() {
                let g = routing.gates[tok][slot];
                let pass = self.expert(e, xt);
                dg[slot] = (0..d).map(|i| wt[i] * pass.out[i]).sum();
                // out = m · W_e, weighted by g: d out = g · w_t.
                let dout: Vec<f64> = wt.iter().map(|v| g * v).collect();
                let mut dm = vec![0.0; f];
                for j in 0..f {
                    for i in 0..d {
                        ddown[e][j * d + i] += pass.m[j] * dout[i];
                        dm[j] += self.down[e][j * d + i] * dout[i];
                    }
                }
                // m = silu(a) ⊙ b.
                let da: Vec<f64> = (0..f)
                    .map(|j| dm[j] * pass.b[j] * silu_grad(pass.a[j]))
                    .collect();
                let db: Vec<f64> = (0..f).map(|j| dm[j] * silu(pass.a[j])).collect();
                // a = x · G_e, b = x · U_e.
                for i in 0..d {
                    for j in 0..f {
                        dgate[e][i * f + j] += xt[i] * da[j];
                        dup[e][i * f + j] += xt[i] * db[j];
                        dx[tok * d + i] +=
                            self.gate[e][i * f + j] * da[j] + self.up[e][i * f + j] * db[j];
                    }
                }
            }
            if gates == Gates::HostConstants {
                continue;
            }
            // gate_k = p_{c_k} / S, S = Σ_k p_{c_k}:
            // dp_{c_j} = dg_j / S − (Σ_k dg_k p_{c_k}) / S²; unselected experts get dp = 0.
            let p = &routing.probs[tok];
            let s: f64 = chosen.iter().map(|&i| p[i]).sum();
            let weighted: f64 = chosen.iter().zip(&dg).map(|(&i, g)| g * p[i]).sum();
            let mut dp = vec![0.0; e_count];
            for (slot, &i) in chosen.iter().enumerate() {
                dp[i] = dg[slot] / s - weighted / (s * s);
            }
            // Softmax: dl_j = p_j (dp_j − Σ_i p_i dp_i).
            let dot: f64 = (0..e_count).map(|j| p[j] * dp[j]).sum();
            let dl: Vec<f64> = (0..e_count).map(|j| p[j] * (dp[j] - dot)).collect();
            // logits = x · R.
            for i in 0..d {
                for j in 0..e_count {
                    drouter[i * e_count + j] += xt[i] * dl[j];
                    dx[tok * d + i] += self.router[i * e_count + j] * dl[j];
                }
            }
        }
        Grads {
            x: dx,
            router: (gates == Gates::Differentiable).then_some(drouter),
            gate: dgate,
            up: dup,
            down: ddown,
        }
    }
}

/// Loss weights, inputs and weights for the reference's own tests: fixed, not random.
#[cfg(test)]
mod tests {
    use super::*;

    fn seq(n: usize, a: f64, b: f64, scale: f64) -> Vec<f64> {
        (0..n).map(|i| (i as f64 * a + b).sin() * scale).collect()
    }

    /// T=6, D=4, F=8, E=4, K=2, no ties.
    fn generic() -> (Moe, Vec<f64>, Vec<f64>) {
        let (d, e, k, f) = (4, 4, 2, 8);
        let moe = Moe {
            d,
            e,
            k,
            f,
            router: seq(d * e, 1.7, 0.3, 1.0),
            gate: (0..e)
                .map(|i| seq(d * f, 0.9, 0.1 + i as f64, 0.7))
                .collect(),
            up: (0..e)
                .map(|i| seq(d * f, 1.3, 0.7 + i as f64, 0.7))
                .collect(),
            down: (0..e)
                .map(|i| seq(f * d, 0.7, 0.2 + i as f64, 0.5))
                .collect(),
        };
        (moe, seq(6 * d, 2.3, 0.5, 1.5), seq(6 * d, 0.37, 1.1, 1.0))
    }

    /// As `generic`, but x is positive, expert 1's router column is so negative that it serves
    /// no token, and experts 2 and 3 have the same column (exact ties): five tokens pick {2, 3}
    /// (a tie inside the top-K), one picks {0, 2} over {0, 3} (a tie across its boundary).
    fn ties() -> (Moe, Vec<f64>, Vec<f64>) {
        let (mut moe, x, w) = generic();
        let columns = [
            [1.2, -0.3, 0.4, -0.5],
            [-3.0; 4],
            [-0.4, 0.7, 0.1, 0.5],
            [-0.4, 0.7, 0.1, 0.5],
        ];
        for (j, col) in columns.iter().enumerate() {
            for (i, v) in col.iter().enumerate() {
                moe.router[i * moe.e + j] = *v;
            }
        }
        (moe, x.iter().map(|v| v.abs() + 0.1).collect(), w)
    }

    /// Central differences of `forward_with` (selection fixed; gates fixed too for host
    /// constants) against `gradients`.
    fn check(moe: &Moe, x: &[f64], w: &[f64], gates: Gates, stable_routing: bool) {
        let base = moe.route(x);
        let loss = |m: &Moe, x: &[f64]| -> f64 {
            if stable_routing {
                assert_eq!(m.route(x).chosen, base.chosen, "routing moved");
            }
            let fixed = (gates == Gates::HostConstants).then_some(base.gates.as_slice());
            m.forward_with(x, &base.chosen, fixed)
                .iter()
                .zip(w)
                .map(|(y, w)| y * w)
                .sum()
        };
        let h = 1e-5;
        // `nudge(m, x, δ)` adds δ to one entry of the weights or of x.
        let fd = |nudge: &dyn Fn(&mut Moe, &mut [f64], f64)| -> f64 {
            let at = |delta: f64| {
                let (mut m, mut xx) = (moe.clone(), x.to_vec());
                nudge(&mut m, &mut xx, delta);
                loss(&m, &xx)
            };
            (at(h) - at(-h)) / (2.0 * h)
        };
        let close = |what: &str, analytic: f64, numeric: f64| {
            assert!(
                (analytic - numeric).abs() <= 1e-7 + 1e-6 * numeric.abs(),
                "{gates:?} d loss / d {what}: analytic {analytic}, finite difference {numeric}"
            );
        };
        let g = moe.gradients(x, w, gates);
        for i in 0..x.len() {
            close(&format!("x[{i}]"), g.x[i], fd(&|_, x, h| x[i] += h));
        }
        for i in 0..moe.router.len() {
            let numeric = fd(&|m, _, h| m.router[i] += h);
            match &g.router {
                Some(r) => close(&format!("router[{i}]"), r[i], numeric),
                None => assert_eq!(
                    numeric, 0.0,
                    "host-constant gates, yet the loss moves with router[{i}]"
                ),
            }
        }
        for e in 0..moe.e {
            for i in 0..moe.d * moe.f {
                close(
                    &format!("gate{e}[{i}]"),
                    g.gate[e][i],
                    fd(&|m, _, h| m.gate[e][i] += h),
                );
                close(
                    &format!("up{e}[{i}]"),
                    g.up[e][i],
                    fd(&|m, _, h| m.up[e][i] += h),
                );
                close(
                    &format!("down{e}[{i}]"),
                    g.down[e][i],
                    fd(&|m, _, h| m.down[e][i] += h),
                );
            }
        }
    }

    #[test]
    fn reference_gradients_match_its_finite_differences() {
        let (moe, x, w) = generic();
        let r = moe.route(&x);
        assert!((0..6).all(|t| !r.boundary_tie(t) && r.margin(t) > 1e-3));
        check(&moe, &x, &w, Gates::Differentiable, true);
        check(&moe, &x, &w, Gates::HostConstants, true);
    }

    #[test]
    fn reference_gradients_match_its_finite_differences_with_ties_and_an_idle_expert() {
        let (moe, x, w) = ties();
        let r = moe.route(&x);
        assert_eq!(r.load(4)[1], 0, "expert 1 should serve no token");
        assert!(
            (0..6).any(|t| r.boundary_tie(t)),
            "no tie across the top-K boundary"
        );
        assert!((0..6).any(|t| r.inner_tie(t)), "no tie inside the top-K");
        // Ties across the boundary go to the lower index.
        for t in (0..6).filter(|&t| r.boundary_tie(t)) {
            assert!(r.chosen[t].contains(&2) && !r.chosen[t].contains(&3));
        }
        // Perturbing one of the tied router columns breaks a tie: the selection is held fixed.
        check(&moe, &x, &w, Gates::Differentiable, false);
        check(&moe, &x, &w, Gates::HostConstants, false);
        let g = moe.gradients(&x, &w, Gates::Differentiable);
        assert!(g.gate[1]
            .iter()
            .chain(&g.up[1])
            .chain(&g.down[1])
            .all(|v| *v == 0.0));
        // The renormalised gates do not depend on an unselected logit: its column's gradient is
        // zero up to the rounding of Σ p·dp (zero analytically).
        assert!((0..moe.d).all(|i| g.router.as_ref().unwrap()[i * moe.e + 1].abs() < 1e-12));
    }

    /// D = F = 1, E = 2, worked by hand: router (0, ln 3) gives p = (1/4, 3/4) at x = 1;
    /// expert 0 (G, U, W) = (1, 1, 1) gives silu(1) = σ(1); expert 1 (2, 1, 1) gives silu(2) = 2σ(2).
    #[test]
    fn reference_forward_matches_hand_computed_values() {
        let moe = |k| Moe {
            d: 1,
            e: 2,
            k,
            f: 1,
            router: vec![0.0, 3f64.ln()],
            gate: vec![vec![1.0], vec![2.0]],
            up: vec![vec![1.0], vec![1.0]],
            down: vec![vec![1.0], vec![1.0]],
        };
        let (s1, s2) = (0.7310585786300049, 2.0 * 0.8807970779778823);
        // K=2: both experts, gates (1/4, 3/4), plus the residual 1.
        let y = moe(2).forward(&[1.0])[0];
        assert!((y - (1.0 + 0.25 * s1 + 0.75 * s2)).abs() < 1e-12, "{y}");
        // K=1: expert 1 alone, its gate renormalised to 1 (not 3/4).
        let y = moe(1).forward(&[1.0])[0];
        assert!((y - (1.0 + s2)).abs() < 1e-12, "{y}");
        // Equal logits: the lower index wins.
        let tied = Moe {
            router: vec![0.5, 0.5],
            ..moe(1)
        };
        assert_eq!(tied.route(&[1.0]).chosen, vec![vec![0]]);
        assert!((tied.forward(&[1.0])[0] - (1.0 + s1)).abs() < 1e-12);
        // d loss/dx with w = 1, K = 1 and host-constant gates: y = x + silu(2x) · x, so
        // dy/dx = 1 + 2 silu'(2) + silu(2), silu'(2) = σ(2) (1 + 2 (1 − σ(2))).
        let g = moe(1).gradients(&[1.0], &[1.0], Gates::HostConstants);
        assert!(g.router.is_none());
        let sig2 = 0.8807970779778823;
        let want = 1.0 + 2.0 * sig2 * (1.0 + 2.0 * (1.0 - sig2)) + s2;
        assert!((g.x[0] - want).abs() < 1e-12, "{} vs {want}", g.x[0]);
    }
}
