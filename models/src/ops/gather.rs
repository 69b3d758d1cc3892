//! Pure data movement as an index map: the one description of padding,
//! subsampling, shortcuts and concatenation that the f64 executor applies
//! to reals and the secure executor to shares (zero is a share of zero).

use crate::network::Shape;

/// For one image: where each output element comes from (an input and an
/// index into that input's image), or nothing (a zero).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gather {
    /// Elements per image of each input.
    pub in_lens: Vec<usize>,
    /// Per output element: `(input, index)`, or `None` for a zero.
    pub map: Vec<Option<(u32, u32)>>,
}

impl Gather {
    /// The map of an output of shape `out` whose element at channel `c`,
    /// row `y`, column `x` is `source(c, y, x)`: `(input, c', y', x')` of
    /// the inputs of shapes `ins`, or `None` for a zero. Indices must lie
    /// inside their input (the operators' shape rules guarantee it).
    pub fn from_fn(ins: &[Shape], out: Shape, source: impl Fn(usize, usize, usize) -> Option<(usize, usize, usize, usize)>) -> Self {
        let mut map = Vec::with_capacity(out.len());
        for c in 0..out.c {
            for y in 0..out.h {
                for x in 0..out.w {
                    map.push(source(c, y, x).map(|(k, sc, sy, sx)| {
                        let s = ins[k];
                        debug_assert!(sc < s.c && sy < s.h && sx < s.w, "gather source outside its input");
                        (k as u32, ((sc * s.h + sy) * s.w + sx) as u32)
                    }));
                }
            }
        }
        Self { in_lens: ins.iter().map(Shape::len).collect(), map }
    }

    /// Apply to `batch` images of each input (`ins[k]` holds `batch` images
    /// of `in_lens[k]` elements): `batch` images of the output.
    pub fn apply<T: Copy + Default>(&self, ins: &[&[T]], batch: usize) -> Vec<T> {
        let mut out = Vec::with_capacity(batch * self.map.len());
        for img in 0..batch {
            out.extend(self.map.iter().map(|m| match *m {
                Some((k, i)) => ins[k as usize][img * self.in_lens[k as usize] + i as usize],
                None => T::default(),
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_map_moves_reals_and_ring_values() {
        // Two 1x1x2 inputs side by side with a zero channel after them.
        let ins = [Shape::new(1, 1, 2), Shape::new(1, 1, 2)];
        let g = Gather::from_fn(&ins, Shape::new(3, 1, 2), |c, y, x| (c < 2).then_some((c, 0, y, x)));
        assert_eq!(
            g.apply(&[&[1.0, 2.0, 10.0, 20.0], &[3.0, 4.0, 30.0, 40.0]], 2),
            vec![1.0, 2.0, 3.0, 4.0, 0.0, 0.0, 10.0, 20.0, 30.0, 40.0, 0.0, 0.0]
        );
        assert_eq!(g.apply(&[&[1u64, 2], &[3, 4]], 1), vec![1, 2, 3, 4, 0, 0]);
    }
}
