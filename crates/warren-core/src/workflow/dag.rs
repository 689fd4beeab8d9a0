//! The validated dependency graph of a workflow: steps are numbered by their
//! position in `steps`, and every edge points from a dependency (parent) to
//! the step that waits for it (child).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use super::WorkflowError;

/// An acyclic graph over a workflow's steps, built by
/// [`super::WorkflowSpec::validate`]. Indices are positions in `steps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dag {
    names: Vec<String>,
    index: HashMap<String, usize>,
    parents: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    order: Vec<usize>,
}

impl Dag {
    /// Builds the graph from each step's parent indices (sorted, no
    /// duplicates, no self-loops, all in range: the caller checked), or
    /// names one cycle.
    pub(crate) fn build(
        names: Vec<String>,
        parents: Vec<Vec<usize>>,
    ) -> Result<Dag, WorkflowError> {
        let n = names.len();
        let mut children = vec![Vec::new(); n];
        for (child, ps) in parents.iter().enumerate() {
            for &parent in ps {
                children[parent].push(child);
            }
        }
        // Kahn's algorithm, always taking the lowest ready index, so the order
        // is deterministic and follows the file wherever the edges allow.
        let mut waiting: Vec<usize> = parents.iter().map(Vec::len).collect();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse(step)) = ready.pop() {
            order.push(step);
            for &child in &children[step] {
                waiting[child] -= 1;
                if waiting[child] == 0 {
                    ready.push(Reverse(child));
                }
            }
        }
        if order.len() < n {
            let cycle = find_cycle(&parents, &waiting);
            return Err(WorkflowError::Cycle {
                steps: cycle.into_iter().map(|i| names[i].clone()).collect(),
            });
        }
        let index = names.iter().cloned().zip(0..).collect();
        Ok(Dag {
            names,
            index,
            parents,
            children,
            order,
        })
    }

    /// Number of steps.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there are no steps (never true for a validated workflow).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The name of step `step`. Panics if out of range, like indexing.
    pub fn name(&self, step: usize) -> &str {
        &self.names[step]
    }

    /// The index of the step called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// The steps `step` depends on, ascending. Panics if out of range.
    pub fn parents(&self, step: usize) -> &[usize] {
        &self.parents[step]
    }

    /// The steps that depend on `step`, ascending. Panics if out of range.
    pub fn children(&self, step: usize) -> &[usize] {
        &self.children[step]
    }

    /// Steps without dependencies: the ones released when the workflow starts.
    pub fn roots(&self) -> Vec<usize> {
        (0..self.len())
            .filter(|&i| self.parents[i].is_empty())
            .collect()
    }

    /// Every step, each after all of its dependencies (ties broken by index).
    pub fn topological_order(&self) -> &[usize] {
        &self.order
    }

    /// `step` and every step reachable from it, in topological order: what a
    /// recovery from `step` resets. Panics if out of range.
    pub fn downstream(&self, step: usize) -> Vec<usize> {
        let marked = self.reach(step, &self.children);
        self.order.iter().copied().filter(|&i| marked[i]).collect()
    }

    /// Every step `step` transitively depends on (not `step` itself), in
    /// topological order. Panics if out of range.
    pub fn ancestors(&self, step: usize) -> Vec<usize> {
        let mut marked = self.reach(step, &self.parents);
        marked[step] = false;
        self.order.iter().copied().filter(|&i| marked[i]).collect()
    }

    /// Marks `from` and everything reachable along `edges`.
    fn reach(&self, from: usize, edges: &[Vec<usize>]) -> Vec<bool> {
        let mut marked = vec![false; self.len()];
        let mut stack = vec![from];
        marked[from] = true;
        while let Some(step) = stack.pop() {
            for &next in &edges[step] {
                if !marked[next] {
                    marked[next] = true;
                    stack.push(next);
                }
            }
        }
        marked
    }
}

/// One cycle among the steps Kahn's algorithm could not order (`waiting > 0`).
///
/// Each such step has at least one parent that is also unordered, so walking
/// from any of them to such a parent must revisit a step; the walk from that
/// first revisit is a cycle. Returned in dependency order, starting at its
/// lowest index, with the first step repeated at the end.
fn find_cycle(parents: &[Vec<usize>], waiting: &[usize]) -> Vec<usize> {
    let stuck = |i: usize| waiting[i] > 0;
    let start = (0..parents.len())
        .find(|&i| stuck(i))
        .expect("a cycle leaves steps unordered");
    let mut position = HashMap::new();
    let mut walk = Vec::new();
    let mut step = start;
    while !position.contains_key(&step) {
        position.insert(step, walk.len());
        walk.push(step);
        step = parents[step]
            .iter()
            .copied()
            .find(|&p| stuck(p))
            .expect("an unordered step has an unordered parent");
    }
    // `walk[from..]` follows parent links (child -> parent): reverse it into
    // dependency order, start at the lowest index so the message is stable,
    // and close the loop.
    let mut cycle: Vec<usize> = walk[position[&step]..].iter().rev().copied().collect();
    let lowest = (0..cycle.len()).min_by_key(|&i| cycle[i]).unwrap_or(0);
    cycle.rotate_left(lowest);
    cycle.push(cycle[0]);
    cycle
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dag(parents: &[&[usize]]) -> Result<Dag, WorkflowError> {
        let names = (0..parents.len()).map(|i| format!("s{i}")).collect();
        Dag::build(names, parents.iter().map(|p| p.to_vec()).collect())
    }

    #[test]
    fn diamond_orders_and_reaches() {
        // s0 -> s1, s0 -> s2, {s1, s2} -> s3, s4 independent
        let d = dag(&[&[], &[0], &[0], &[1, 2], &[]]).unwrap();
        assert_eq!(d.topological_order(), &[0, 1, 2, 3, 4]);
        assert_eq!(d.children(0), &[1, 2]);
        assert_eq!(d.parents(3), &[1, 2]);
        assert_eq!(d.roots(), vec![0, 4]);
        assert_eq!(d.downstream(1), vec![1, 3]);
        assert_eq!(d.downstream(0), vec![0, 1, 2, 3]);
        assert_eq!(d.ancestors(3), vec![0, 1, 2]);
        assert_eq!(d.index_of("s3"), Some(3));
        assert_eq!(d.index_of("nope"), None);
    }

    #[test]
    fn order_follows_edges_not_positions() {
        // s0 depends on s2, s1 on s0.
        let d = dag(&[&[2], &[0], &[]]).unwrap();
        assert_eq!(d.topological_order(), &[2, 0, 1]);
        assert_eq!(d.downstream(2), vec![2, 0, 1]);
    }

    #[test]
    fn cycle_is_named_in_dependency_order() {
        // s0 -> s1 -> s2 -> s0, s3 hangs below the cycle.
        let err = dag(&[&[2], &[0], &[1], &[2]]).unwrap_err();
        let WorkflowError::Cycle { steps } = &err else {
            panic!("{err}")
        };
        assert_eq!(steps.first(), steps.last());
        assert_eq!(steps.len(), 4);
        assert!(!steps.contains(&"s3".to_string()));
        let text = err.to_string();
        assert!(text.contains("s0 -> s1 -> s2 -> s0"), "{text}");
    }
}
